//! Per-tool policies of grants: the choices made at consent, the pins of the approved
//! definitions, and what an upstream served differently since. Every change moves the
//! shared change counter (see `token_cache`), so a running broker notices a change the
//! CLI made on its next maintenance tick.

use serde::Serialize;
use sqlx::Row;

use super::Store;
use crate::error::Result;
use crate::oauth::{GrantId, UnixTime};
use crate::tool_policy::{Finding, GrantPolicy, ToolChoice, ToolDefinition, ToolRule, ToolStatus};

/// One tool of a grant as the person reviews it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolRow {
    pub name: String,
    pub choice: ToolChoice,
    pub status: ToolStatus,
    /// The approved definition (canonical JSON).
    pub definition: Option<String>,
    /// What the upstream serves instead (status `changed` or `new`).
    pub served_definition: Option<String>,
    pub allowed_until: Option<UnixTime>,
}

/// What a change of choice did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChoiceChange {
    Changed,
    /// The grant has no tool of that name.
    UnknownTool,
    /// The grant chose no tools (all or nothing).
    NotPinned,
}

impl Store {
    /// Records the tools chosen at consent, replacing what the grant had (a client
    /// approved again chooses again). `tools: None`: the upstream could not be listed.
    pub async fn save_tool_policy(
        &self,
        grant: GrantId,
        tools: Option<&[(ToolDefinition, ToolChoice)]>,
        now: UnixTime,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM grant_tools WHERE grant_id = ?")
            .bind(grant.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO grant_tool_policies (grant_id, pinned, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (grant_id) DO UPDATE SET pinned = excluded.pinned, updated_at = excluded.updated_at",
        )
        .bind(grant.0)
        .bind(tools.is_some())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (def, choice) in tools.unwrap_or_default() {
            sqlx::query(
                "INSERT INTO grant_tools (grant_id, name, choice, status, pin, definition, updated_at)
                 VALUES (?, ?, ?, 'approved', ?, ?, ?)",
            )
            .bind(grant.0)
            .bind(&def.name)
            .bind(choice.as_str())
            .bind(&def.pin)
            .bind(&def.canonical)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.tools_changed();
        Ok(())
    }

    /// The grant's policy; a grant without one sees and calls every tool.
    pub async fn tool_policy(&self, grant: GrantId) -> Result<GrantPolicy> {
        if !self.chose_tools(grant).await? {
            return Ok(GrantPolicy::unpinned());
        }
        let rows = sqlx::query(
            "SELECT name, choice, status, pin, allowed_until FROM grant_tools WHERE grant_id = ?",
        )
        .bind(grant.0)
        .fetch_all(&self.pool)
        .await?;
        let tools = rows
            .into_iter()
            .map(|r| {
                let rule = ToolRule {
                    choice: ToolChoice::parse(r.get("choice")).unwrap_or(ToolChoice::Block),
                    status: ToolStatus::parse(r.get("status")).unwrap_or(ToolStatus::New),
                    pin: r.get("pin"),
                    allowed_until: r.get("allowed_until"),
                };
                (r.get::<String, _>("name"), rule)
            })
            .collect();
        Ok(GrantPolicy {
            pinned: true,
            tools,
        })
    }

    /// The grant's tools for review, by name; `None` when it chose none (all or nothing).
    pub async fn tool_rows(&self, grant: GrantId) -> Result<Option<Vec<ToolRow>>> {
        if !self.chose_tools(grant).await? {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT name, choice, status, definition, served_definition, allowed_until
             FROM grant_tools WHERE grant_id = ? ORDER BY name",
        )
        .bind(grant.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(
            rows.into_iter()
                .map(|r| ToolRow {
                    name: r.get("name"),
                    choice: ToolChoice::parse(r.get("choice")).unwrap_or(ToolChoice::Block),
                    status: ToolStatus::parse(r.get("status")).unwrap_or(ToolStatus::New),
                    definition: r.get("definition"),
                    served_definition: r.get("served_definition"),
                    allowed_until: r.get("allowed_until"),
                })
                .collect(),
        ))
    }

    /// Records what an upstream served that the grant had not approved: a changed
    /// definition suspends the tool, a new tool is recorded hidden (choice `block` until
    /// the person picks one). Returns whether anything was recorded.
    pub async fn record_tool_findings(
        &self,
        grant: GrantId,
        findings: &[Finding],
        now: UnixTime,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let mut any = false;
        for f in findings {
            let done = match f {
                Finding::Changed(d) => sqlx::query(
                    "UPDATE grant_tools SET status = 'changed', served_pin = ?, served_definition = ?, updated_at = ?
                     WHERE grant_id = ? AND name = ? AND status = 'approved'",
                )
                .bind(&d.pin)
                .bind(&d.canonical)
                .bind(now)
                .bind(grant.0)
                .bind(&d.name)
                .execute(&mut *tx)
                .await?,
                Finding::New(d) => sqlx::query(
                    "INSERT INTO grant_tools (grant_id, name, choice, status, served_pin, served_definition, updated_at)
                     VALUES (?, ?, 'block', 'new', ?, ?, ?) ON CONFLICT (grant_id, name) DO NOTHING",
                )
                .bind(grant.0)
                .bind(&d.name)
                .bind(&d.pin)
                .bind(&d.canonical)
                .bind(now)
                .execute(&mut *tx)
                .await?,
            };
            any |= done.rows_affected() > 0;
        }
        tx.commit().await?;
        if any {
            self.tools_changed();
        }
        Ok(any)
    }

    /// Sets a tool's choice. Allowing (or asking for) a changed or new tool approves what
    /// the upstream serves now; blocking keeps a changed tool suspended.
    pub async fn set_tool_choice(
        &self,
        grant: GrantId,
        name: &str,
        choice: ToolChoice,
        now: UnixTime,
    ) -> Result<ChoiceChange> {
        if !self.chose_tools(grant).await? {
            return Ok(ChoiceChange::NotPinned);
        }
        let q = if choice == ToolChoice::Block {
            sqlx::query(
                "UPDATE grant_tools SET choice = ?, allowed_until = NULL, updated_at = ? WHERE grant_id = ? AND name = ?",
            )
        } else {
            sqlx::query(
                "UPDATE grant_tools SET choice = ?, allowed_until = NULL, updated_at = ?,
                   pin = CASE WHEN status = 'approved' THEN pin ELSE served_pin END,
                   definition = CASE WHEN status = 'approved' THEN definition ELSE served_definition END,
                   served_pin = NULL, served_definition = NULL, status = 'approved'
                 WHERE grant_id = ? AND name = ?",
            )
        };
        let done = q
            .bind(choice.as_str())
            .bind(now)
            .bind(grant.0)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(ChoiceChange::UnknownTool);
        }
        self.tools_changed();
        Ok(ChoiceChange::Changed)
    }

    /// "Allow for 1 hour" on an Ask tool.
    pub async fn allow_tool_until(
        &self,
        grant: GrantId,
        name: &str,
        until: UnixTime,
    ) -> Result<()> {
        sqlx::query("UPDATE grant_tools SET allowed_until = ? WHERE grant_id = ? AND name = ?")
            .bind(until)
            .bind(grant.0)
            .bind(name)
            .execute(&self.pool)
            .await?;
        self.tools_changed();
        Ok(())
    }

    /// Whether the grant chose its tools at consent (else every tool is allowed).
    async fn chose_tools(&self, grant: GrantId) -> Result<bool> {
        let pinned: Option<bool> =
            sqlx::query_scalar("SELECT pinned FROM grant_tool_policies WHERE grant_id = ?")
                .bind(grant.0)
                .fetch_optional(&self.pool)
                .await?;
        Ok(pinned == Some(true))
    }

    /// The display name of a grant's client (its id when it gave none).
    pub async fn grant_client_name(&self, grant: GrantId) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT COALESCE(NULLIF(c.name, ''), g.client_id) FROM grants g LEFT JOIN clients c ON c.id = g.client_id WHERE g.id = ?",
        )
        .bind(grant.0)
        .fetch_optional(&self.pool)
        .await?)
    }

    fn tools_changed(&self) {
        // The same counter as revocations: one atomic read tells a running broker that
        // something changed, and it re-reads what it caches.
        if let Err(e) = self.tokens.revoked() {
            tracing::warn!("cannot move the change counter: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn choices_pins_and_findings_round_trip() {
        let (s, _dir) = Store::open_temp().await.unwrap();
        // A grant row is needed for the foreign key.
        sqlx::query("INSERT INTO clients (id, name, auth_method, redirect_uris, metadata, created_at) VALUES ('c','c','none','[]','{}',0)").execute(&s.pool).await.unwrap();
        sqlx::query("INSERT INTO grants (id, client_id, upstream, resource, scope, created_at) VALUES (1,'c','u','r','mcp',0)").execute(&s.pool).await.unwrap();
        let g = GrantId(1);
        assert_eq!(s.tool_policy(g).await.unwrap(), GrantPolicy::unpinned());
        let a = ToolDefinition::of(&json!({"name":"a","description":"A"})).unwrap();
        let b = ToolDefinition::of(&json!({"name":"b","description":"B"})).unwrap();
        s.save_tool_policy(
            g,
            Some(&[
                (a.clone(), ToolChoice::Allow),
                (b.clone(), ToolChoice::Block),
            ]),
            1,
        )
        .await
        .unwrap();
        let p = s.tool_policy(g).await.unwrap();
        assert!(p.pinned);
        assert_eq!(p.tools["a"].pin.as_deref(), Some(a.pin.as_str()));
        assert_eq!(p.tools["b"].choice, ToolChoice::Block);

        let a2 = ToolDefinition::of(&json!({"name":"a","description":"A, changed"})).unwrap();
        let c = ToolDefinition::of(&json!({"name":"c"})).unwrap();
        assert!(
            s.record_tool_findings(g, &[Finding::Changed(a2.clone()), Finding::New(c)], 2)
                .await
                .unwrap()
        );
        assert!(
            !s.record_tool_findings(g, &[Finding::Changed(a2.clone())], 3)
                .await
                .unwrap(),
            "recorded once"
        );
        let rows = s.tool_rows(g).await.unwrap().unwrap();
        assert_eq!(rows[0].status, ToolStatus::Changed);
        assert_eq!(
            rows[0].served_definition.as_deref(),
            Some(a2.canonical.as_str())
        );
        assert_eq!(rows[2].status, ToolStatus::New);

        assert_eq!(
            s.set_tool_choice(g, "a", ToolChoice::Allow, 4)
                .await
                .unwrap(),
            ChoiceChange::Changed
        );
        let p = s.tool_policy(g).await.unwrap();
        assert_eq!(
            p.tools["a"].pin.as_deref(),
            Some(a2.pin.as_str()),
            "the change is approved"
        );
        assert_eq!(p.tools["a"].status, ToolStatus::Approved);
        assert_eq!(
            s.set_tool_choice(g, "nope", ToolChoice::Allow, 4)
                .await
                .unwrap(),
            ChoiceChange::UnknownTool
        );
    }
}
