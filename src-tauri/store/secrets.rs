//! The index of secret names kept in the OS keychain. Values never come here.

use super::Store;
use crate::error::Result;

impl Store {
    pub async fn record_secret_name(&self, name: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO secrets (name, updated_at) VALUES (?, ?)
             ON CONFLICT(name) DO UPDATE SET updated_at = excluded.updated_at",
        )
        .bind(name)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn forget_secret_name(&self, name: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM secrets WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// `(name, updated_at)`, by name.
    pub async fn secret_names(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT name, updated_at FROM secrets ORDER BY name")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn index_records_and_forgets_names() {
        let (store, _dir) = Store::open_temp().await.unwrap();
        store.record_secret_name("b", 1).await.unwrap();
        store.record_secret_name("a", 2).await.unwrap();
        store.record_secret_name("b", 3).await.unwrap();
        assert_eq!(
            store.secret_names().await.unwrap(),
            vec![("a".to_owned(), 2), ("b".to_owned(), 3)]
        );
        assert!(store.forget_secret_name("a").await.unwrap());
        assert!(!store.forget_secret_name("a").await.unwrap());
        assert_eq!(store.secret_names().await.unwrap().len(), 1);
    }
}
