//! Several accounts per upstream (`[servers.NAME.accounts.ACCOUNT]`): which accounts a
//! consent screen offers, checking the one chosen, and moving a grant to another
//! account. A grant's sessions get only its account's credentials (`proxy::Upstreams`).

use crate::consent::ConsentView;
use crate::events::GatewayEvent;
use crate::oauth::GrantId;

use super::{Gateway, GatewayError};

impl Gateway {
    /// Fills the view's account choice: the accounts when the upstream has several, and
    /// the account this client chose last time as a suggestion.
    pub(super) async fn offer_accounts(&self, view: &mut ConsentView) -> Result<(), GatewayError> {
        let config = self.config();
        let Some(up) = config.upstream(&view.upstream) else {
            return Ok(());
        };
        if !up.needs_account_choice() {
            return Ok(());
        }
        view.accounts = up.account_names().into_iter().map(str::to_owned).collect();
        view.suggested_account = self
            .inner
            .store
            .last_account(&view.client_id, &view.upstream)
            .await?
            .filter(|a| view.accounts.contains(a));
        Ok(())
    }

    /// The account an approval records: the one chosen (which must be one of the
    /// upstream's), the only one, or `None` for an upstream without accounts. With
    /// several and no choice, [`GatewayError::AccountRequired`].
    pub(super) fn chosen_account(
        &self,
        upstream: &str,
        account: Option<&str>,
    ) -> Result<Option<String>, GatewayError> {
        let config = self.config();
        let Some(up) = config.upstream(upstream) else {
            return Ok(None);
        };
        let account = account.filter(|a| !a.is_empty());
        match account {
            Some(a) if up.accounts.contains_key(a) => Ok(Some(a.to_owned())),
            Some(a) => Err(crate::config::UnknownAccount {
                upstream: upstream.to_owned(),
                account: a.to_owned(),
            }
            .into()),
            None if up.needs_account_choice() => Err(GatewayError::AccountRequired {
                upstream: upstream.to_owned(),
                accounts: up.account_names().into_iter().map(str::to_owned).collect(),
            }),
            None => Ok(up.default_account().map(str::to_owned)),
        }
    }

    /// The active grant a new approval of `client_id` on `resource` would update, and its
    /// account: approving again keeps the grant, so a different account chosen this time
    /// must end the sessions that hold the old one's credentials.
    pub(super) async fn grant_before_approval(
        &self,
        client_id: &str,
        resource: &str,
    ) -> Result<Option<(GrantId, Option<String>)>, GatewayError> {
        Ok(self
            .inner
            .store
            .active_grants()
            .await?
            .into_iter()
            .find(|g| g.client_id == client_id && g.resource == resource)
            .map(|g| (g.id, g.account)))
    }

    /// After an approval recorded `account` on `grant`: if the grant existed with another
    /// account, its open sessions end (the client's next session uses the new one).
    pub(super) async fn account_reapproved(
        &self,
        before: Option<(GrantId, Option<String>)>,
        grant: GrantId,
        account: Option<&str>,
    ) {
        if let Some((id, old)) = before
            && id == grant
            && old.as_deref() != account
        {
            tracing::info!(grant = %grant, account = account.unwrap_or(""), "grant approved again with another account; ending its sessions");
            self.inner.upstreams.stop_for_grant(grant).await;
        }
    }

    /// Moves a grant to another account of its upstream and ends its open sessions (they
    /// hold the old account's credentials); the client's next session uses the new one.
    pub async fn switch_account(&self, grant: GrantId, account: &str) -> Result<(), GatewayError> {
        let g = self.active_grant(grant).await?;
        let account = self
            .chosen_account(&g.upstream, Some(account))?
            .ok_or_else(|| crate::config::UnknownAccount {
                upstream: g.upstream.clone(),
                account: account.to_owned(),
            })?;
        // Rows take the grant's account when written: the calls made so far go out first.
        self.flush_activity().await;
        if !self
            .inner
            .store
            .set_grant_account(grant, Some(&account))
            .await?
        {
            return Err(GatewayError::UnknownGrant(grant));
        }
        self.inner.upstreams.stop_for_grant(grant).await;
        tracing::info!(grant = %grant, upstream = %g.upstream, account, "grant switched account");
        self.emit(GatewayEvent::GrantsChanged);
        Ok(())
    }
}
