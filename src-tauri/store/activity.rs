//! The activity log's rows (migration 0004): written in batches by the one writer task
//! (`activity`), read newest first by the CLI and the grants window, and trimmed by age
//! and by a row cap. Plain data; what a row means is decided by whoever records it.

use serde::Serialize;
use sqlx::{QueryBuilder, Row};

use super::Store;
use crate::error::Result;
use crate::oauth::GrantId;

/// One row of the activity log, as written and as read.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ActivityRow {
    /// Assigned by the database; 0 before the row is written.
    pub id: i64,
    /// Unix time in milliseconds.
    pub at_ms: i64,
    pub event: String,
    pub grant_id: Option<GrantId>,
    pub client_id: Option<String>,
    pub upstream: Option<String>,
    /// The upstream account the grant used (issue 15); taken from the grant when the row
    /// is written if not given.
    pub account: Option<String>,
    pub method: Option<String>,
    pub target: Option<String>,
    pub outcome: String,
    pub error_code: Option<i64>,
    pub duration_us: Option<i64>,
    pub response_bytes: Option<i64>,
    pub reference: Option<String>,
    pub detail: Option<String>,
}

/// Which rows to read: every condition given must hold. Newest first.
#[derive(Debug, Clone, Default)]
pub struct ActivityQuery {
    pub grant: Option<GrantId>,
    pub upstream: Option<String>,
    pub event: Option<String>,
    /// Every event but calls (a grant's authorization history).
    pub exclude_calls: bool,
    pub client_id: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<String>,
    /// Only rows not ok (an error, a refusal, a failure, a timeout, a limit).
    pub errors_only: bool,
    pub since_ms: Option<i64>,
    /// Only rows after this id (for `--follow`), read oldest first then.
    pub after_id: Option<i64>,
    /// Only rows before this id (the next page, newest first).
    pub before_id: Option<i64>,
    pub limit: u32,
}

/// Calls per tool (or resource, prompt, method) of one grant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TargetCount {
    /// The tool, resource or prompt; the method for calls without one.
    pub name: String,
    pub calls: i64,
    pub errors: i64,
}

const COLUMNS: &str = "id, at_ms, event, grant_id, client_id, upstream, account, method, target, \
                       outcome, error_code, duration_us, response_bytes, reference, detail";

impl Store {
    /// Writes a batch in one transaction. The client and the account of a call row are
    /// the grant's, looked up here so that the proxy's hot path never needs them.
    pub async fn insert_activity(&self, rows: &[ActivityRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        let mut rest = rows;
        while !rest.is_empty() {
            // Statements of 64, 32, ... 1 rows: a handful of distinct SQL texts, each
            // prepared once and then taken from the connection's statement cache.
            let n = if rest.len() >= 64 {
                64
            } else {
                1 << (usize::BITS - 1 - rest.len().leading_zeros())
            };
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            let mut q = QueryBuilder::new(
                "INSERT INTO activity (at_ms, event, grant_id, client_id, upstream, account, \
                 method, target, outcome, error_code, duration_us, response_bytes, reference, \
                 detail) ",
            );
            q.push_values(chunk, |mut b, r| {
                b.push_bind(r.at_ms)
                    .push_bind(&r.event)
                    .push_bind(r.grant_id.map(|g| g.0));
                // The same SQL text for every row: a row without a client takes its grant's.
                b.push("coalesce(")
                    .push_bind_unseparated(&r.client_id)
                    .push_unseparated(", (SELECT client_id FROM grants WHERE id = ")
                    .push_bind_unseparated(r.grant_id.map(|g| g.0))
                    .push_unseparated("))");
                b.push_bind(&r.upstream);
                b.push("coalesce(")
                    .push_bind_unseparated(&r.account)
                    .push_unseparated(", (SELECT account FROM grants WHERE id = ")
                    .push_bind_unseparated(r.grant_id.map(|g| g.0))
                    .push_unseparated("))");
                b.push_bind(&r.method)
                    .push_bind(&r.target)
                    .push_bind(&r.outcome)
                    .push_bind(r.error_code)
                    .push_bind(r.duration_us)
                    .push_bind(r.response_bytes)
                    .push_bind(&r.reference)
                    .push_bind(&r.detail);
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Rows matching `q`, newest first (oldest first with `after_id`).
    pub async fn activity(&self, q: &ActivityQuery) -> Result<Vec<ActivityRow>> {
        let mut b = QueryBuilder::new(format!("SELECT {COLUMNS} FROM activity WHERE 1=1"));
        if let Some(g) = q.grant {
            b.push(" AND grant_id = ").push_bind(g.0);
        }
        if let Some(u) = &q.upstream {
            b.push(" AND upstream = ").push_bind(u.clone());
        }
        if let Some(e) = &q.event {
            b.push(" AND event = ").push_bind(e.clone());
        }
        if q.exclude_calls {
            b.push(" AND event <> 'call'");
        }
        if let Some(c) = &q.client_id {
            b.push(" AND client_id = ").push_bind(c.clone());
        }
        if let Some(t) = &q.target {
            b.push(" AND coalesce(target, method) = ")
                .push_bind(t.clone());
        }
        if let Some(o) = &q.outcome {
            b.push(" AND outcome = ").push_bind(o.clone());
        }
        if q.errors_only {
            b.push(" AND outcome <> 'ok'");
        }
        if let Some(s) = q.since_ms {
            b.push(" AND at_ms >= ").push_bind(s);
        }
        if let Some(a) = q.after_id {
            b.push(" AND id > ").push_bind(a);
        }
        if let Some(a) = q.before_id {
            b.push(" AND id < ").push_bind(a);
        }
        b.push(if q.after_id.is_some() {
            " ORDER BY id ASC LIMIT "
        } else {
            " ORDER BY id DESC LIMIT "
        })
        .push_bind(i64::from(q.limit.max(1)));
        let rows = b.build().fetch_all(&self.pool).await?;
        rows.iter().map(row).collect()
    }

    /// Calls and errors per tool (or resource, prompt, method) of one grant, busiest first.
    pub async fn activity_counts(&self, grant: GrantId) -> Result<Vec<TargetCount>> {
        let rows = sqlx::query(
            "SELECT coalesce(target, method, '') AS name, count(*) AS calls, \
             sum(outcome <> 'ok') AS errors FROM activity \
             WHERE grant_id = ? AND event = 'call' GROUP BY name ORDER BY calls DESC, name",
        )
        .bind(grant.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TargetCount {
                    name: r.try_get("name")?,
                    calls: r.try_get("calls")?,
                    errors: r.try_get::<Option<i64>, _>("errors")?.unwrap_or(0),
                })
            })
            .collect()
    }

    /// Drops rows older than `before_ms` and, beyond `max_rows`, the oldest. Returns how
    /// many went.
    pub async fn trim_activity(&self, before_ms: i64, max_rows: u64) -> Result<u64> {
        let old = sqlx::query("DELETE FROM activity WHERE at_ms < ?")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        let over = sqlx::query(
            "DELETE FROM activity WHERE id <= \
             (SELECT id FROM activity ORDER BY id DESC LIMIT 1 OFFSET ?)",
        )
        .bind(max_rows.min(i64::MAX as u64) as i64)
        .execute(&self.pool)
        .await?;
        Ok(old.rows_affected() + over.rows_affected())
    }
}

fn row(r: &sqlx::sqlite::SqliteRow) -> Result<ActivityRow> {
    Ok(ActivityRow {
        id: r.try_get("id")?,
        at_ms: r.try_get("at_ms")?,
        event: r.try_get("event")?,
        grant_id: r.try_get::<Option<i64>, _>("grant_id")?.map(GrantId),
        client_id: r.try_get("client_id")?,
        upstream: r.try_get("upstream")?,
        account: r.try_get("account")?,
        method: r.try_get("method")?,
        target: r.try_get("target")?,
        outcome: r.try_get("outcome")?,
        error_code: r.try_get("error_code")?,
        duration_us: r.try_get("duration_us")?,
        response_bytes: r.try_get("response_bytes")?,
        reference: r.try_get("reference")?,
        detail: r.try_get("detail")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(at_ms: i64, grant: i64, target: &str, outcome: &str) -> ActivityRow {
        ActivityRow {
            at_ms,
            event: "call".into(),
            grant_id: Some(GrantId(grant)),
            upstream: Some("up".into()),
            method: Some("tools/call".into()),
            target: Some(target.into()),
            outcome: outcome.into(),
            ..ActivityRow::default()
        }
    }

    #[tokio::test]
    async fn rows_are_read_newest_first_filtered_counted_and_trimmed() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        let rows: Vec<ActivityRow> = (0..10)
            .map(|i| {
                call(
                    1000 + i,
                    1 + i % 2,
                    if i % 3 == 0 { "a" } else { "b" },
                    if i == 4 { "error" } else { "ok" },
                )
            })
            .collect();
        store.insert_activity(&rows).await.unwrap();
        let q = ActivityQuery {
            grant: Some(GrantId(1)),
            limit: 100,
            ..ActivityQuery::default()
        };
        let mine = store.activity(&q).await.unwrap();
        assert_eq!(mine.len(), 5);
        assert!(mine.windows(2).all(|w| w[0].id > w[1].id));
        let errors = store
            .activity(&ActivityQuery {
                errors_only: true,
                ..q.clone()
            })
            .await
            .unwrap();
        assert_eq!(errors.len(), 1);
        let counts = store.activity_counts(GrantId(1)).await.unwrap();
        assert_eq!(counts.iter().map(|c| c.calls).sum::<i64>(), 5);
        assert_eq!(counts.iter().map(|c| c.errors).sum::<i64>(), 1);
        // Age first, then the cap: the oldest go.
        assert_eq!(store.trim_activity(1002, 5).await.unwrap(), 5);
        let left = store
            .activity(&ActivityQuery {
                limit: 100,
                ..ActivityQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(
            left.iter().map(|r| r.at_ms).collect::<Vec<_>>(),
            vec![1009, 1008, 1007, 1006, 1005]
        );
    }
}
