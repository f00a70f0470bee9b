//! Client registrations as the person manages them: list, and delete. Deleting one
//! revokes its grants (announced like any revocation) and makes its next authorization
//! or token request answer `invalid_client`, so a client that handles that error
//! (RFC 6749 §5.2) registers again.

use crate::clock::now;
use crate::events::RevokeReason;
use crate::store::{DeletedClient, RegisteredClient};

use super::{Gateway, GatewayError};

impl Gateway {
    pub async fn registrations(&self) -> Result<Vec<RegisteredClient>, GatewayError> {
        Ok(self.inner.store.registrations().await?)
    }

    pub async fn delete_registration(
        &self,
        client_id: &str,
    ) -> Result<DeletedClient, GatewayError> {
        let deleted = {
            let _serial = self.inner.revocations.lock().await;
            let deleted = self
                .inner
                .store
                .delete_client(client_id, now())
                .await?
                .ok_or_else(|| GatewayError::UnknownClient(client_id.to_owned()))?;
            for g in &deleted.revoked {
                self.forget_grant(g.id);
            }
            deleted
        };
        tracing::info!(
            client_id,
            grants = deleted.revoked.len(),
            "registration deleted"
        );
        for g in &deleted.revoked {
            self.after_revocation(g, RevokeReason::RegistrationDeleted)
                .await;
        }
        Ok(deleted)
    }
}
