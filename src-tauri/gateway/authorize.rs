//! The authorization endpoint's flow (RFC 6749 §4.1.1-4.1.2, OAuth 2.1 §4.1): validate the
//! request (`oauth::authorize`), ask the person (the headless form, or a native window
//! through the desktop shell), and on Approve record the grant and a single-use code and
//! send the browser back with `code`, `state` and `iss` (RFC 9207). Deny sends
//! `error=access_denied` and records nothing.

use crate::clock::now;
use crate::consent::{ConsentAnswer, ConsentLookupError, ConsentView, Decision, WaitState};
use crate::events::GatewayEvent;
use crate::oauth::authorize::{
    AuthorizeError, AuthorizeRequest, code_redirect, error_redirect, validate_authorize,
};
use crate::oauth::cimd::is_metadata_client_id;
use crate::oauth::{Client, ErrorCode, OAuthError, TokenHash, mint_secret};
use crate::store::NewCode;

use super::{Gateway, GatewayError};

/// RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is
/// RECOMMENDED"; the exchange follows the redirect at once, so two minutes is plenty.
const CODE_TTL_SECS: i64 = 120;

/// What `/authorize` does next.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// Show the consent form (headless).
    Form {
        view: ConsentView,
        consent_id: String,
        csrf: String,
        /// The redirect URI, for the page's `form-action` policy.
        redirect_uri: String,
    },
    /// A native window asks; the browser waits at `/authorize/wait?id=WAIT_ID`.
    Wait { view: ConsentView, wait_id: String },
    /// Send the browser back to the client (an error it may see, RFC 6749 §4.1.2.1).
    Redirect(String),
    /// The client or its redirect URI is not valid: an error page, never a redirect.
    Refused(OAuthError),
}

/// How long showing the consent may wait for its upstream's child to start.
const PREWARM_WITHIN: std::time::Duration = std::time::Duration::from_millis(500);

impl Gateway {
    /// `GET /authorize` with its query parameters.
    pub async fn authorize(
        &self,
        pairs: &[(String, String)],
    ) -> Result<AuthorizeOutcome, GatewayError> {
        let client_id = pairs
            .iter()
            .find(|(k, _)| k == "client_id")
            .map(|(_, v)| v.as_str());
        self.limit(
            self.inner.limits.authorization(client_id.unwrap_or("")),
            None,
            client_id,
        )?;
        let client = match client_id {
            Some(id) if is_metadata_client_id(id) => match self.metadata_client(id).await? {
                Ok(c) => Some(c),
                Err(refused) => return Ok(AuthorizeOutcome::Refused(refused)),
            },
            Some(id) => self.inner.store.client(id).await?,
            None => None,
        };
        let req = match validate_authorize(pairs, client.as_ref(), &self.authorize_ctx()) {
            Ok(r) => r,
            Err(AuthorizeError::DoNotRedirect(e)) => return Ok(AuthorizeOutcome::Refused(e)),
            Err(AuthorizeError::Redirect {
                redirect_uri,
                state,
                error,
            }) => {
                return Ok(AuthorizeOutcome::Redirect(error_redirect(
                    &redirect_uri,
                    state.as_deref(),
                    &error,
                    self.issuer().as_str(),
                )));
            }
        };
        let mut view = ConsentView::of(&req);
        self.offer_accounts(&mut view).await?;
        (view.tools, view.tools_error) = self.consent_tools(&req.upstream).await;
        // Start the upstream while the person reads (stopped on Deny or expiry). Awaited,
        // so that the decision always finds it; bounded, so that a slow keychain does
        // not hold the page. An upstream with several accounts is not started: its
        // environment waits for the choice.
        let _ = tokio::time::timeout(
            PREWARM_WITHIN,
            self.upstreams().prewarm(&req.upstream, &req.code_challenge),
        )
        .await;
        if self.inner.consents.is_native() {
            let wait_id = self.inner.consents.start_wait();
            let g = self.clone();
            let id = wait_id.clone();
            let asked = view.clone();
            // The window is answered whenever the person gets to it; the browser polls.
            tokio::spawn(async move {
                let answer = g.inner.consents.ask_native(asked.clone()).await;
                let to = g.decided(&req, &asked, &answer).await;
                g.inner.consents.finish_wait(&id, to);
            });
            return Ok(AuthorizeOutcome::Wait { view, wait_id });
        }
        let redirect_uri = req.redirect_uri.clone();
        let (consent_id, csrf) = self.inner.consents.open_form(req, view.clone());
        Ok(AuthorizeOutcome::Form {
            view,
            consent_id,
            csrf,
            redirect_uri,
        })
    }

    /// A `client_id` that is an `https` URL: fetch its Client ID Metadata Document and
    /// record the client so that grants, tokens and `grants list` can name it. A document
    /// that cannot be used refuses the request without a redirect (RFC 6749 §4.1.2.1: the
    /// client is not known, so neither is a safe place to send the browser).
    async fn metadata_client(
        &self,
        client_id: &str,
    ) -> Result<Result<Client, OAuthError>, GatewayError> {
        let client = match self.inner.client_metadata.client(client_id).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(client_id, "client metadata document refused: {e}");
                return Ok(Err(OAuthError::invalid_request(e.to_string())));
            }
        };
        self.inner
            .store
            .upsert_metadata_client(&client, now())
            .await?;
        Ok(Ok(client))
    }

    /// The HTML form's answer: consumes the question (its CSRF token must match) and
    /// returns where to send the browser.
    pub async fn decide_form(
        &self,
        consent_id: &str,
        csrf: &str,
        answer: &ConsentAnswer,
    ) -> Result<String, GatewayError> {
        // Checked before the question is consumed: a refused choice can be made again.
        if answer.decision == Decision::Approve
            && let Some(upstream) = self.inner.consents.form_upstream(consent_id)
        {
            self.chosen_account(&upstream, answer.account.as_deref())?;
        }
        let (req, view) = self
            .inner
            .consents
            .take_form(consent_id, csrf)
            .map_err(|e| match e {
                ConsentLookupError::Gone => GatewayError::ConsentGone,
                ConsentLookupError::BadCsrf => GatewayError::ConsentForged,
            })?;
        Ok(self.decided(&req, &view, answer).await)
    }

    fn shown_in(&self) -> &'static str {
        if self.inner.consents.is_native() {
            "window"
        } else {
            "page"
        }
    }

    /// A native window's answer (with the account chosen, when the upstream has several);
    /// the waiting browser continues by itself. Approve without a needed choice is
    /// refused and leaves the question open.
    pub fn decide_native(
        &self,
        consent_id: &str,
        answer: ConsentAnswer,
    ) -> Result<(), GatewayError> {
        if answer.decision == Decision::Approve {
            let view = self
                .inner
                .consents
                .native_view(consent_id)
                .ok_or(GatewayError::ConsentGone)?;
            self.chosen_account(&view.upstream, answer.account.as_deref())?;
        }
        self.inner
            .consents
            .answer_native(consent_id, answer)
            .map_err(|_| GatewayError::ConsentGone)
    }

    /// What a native consent window shows.
    pub fn consent_view(&self, consent_id: &str) -> Result<ConsentView, GatewayError> {
        self.inner
            .consents
            .native_view(consent_id)
            .ok_or(GatewayError::ConsentGone)
    }

    /// Polled by the browser while a native window asks.
    pub fn consent_wait(&self, wait_id: &str) -> WaitState {
        self.inner.consents.poll_wait(wait_id)
    }

    /// [`apply`](Self::apply), where a failure to record the decision still sends the
    /// browser back to the client: with `temporarily_unavailable` for a full disk (the
    /// client can retry), else `server_error` (RFC 6749 §4.1.2.1).
    async fn decided(
        &self,
        req: &AuthorizeRequest,
        view: &ConsentView,
        answer: &ConsentAnswer,
    ) -> String {
        match self.apply(req, view, answer).await {
            Ok(to) => to,
            Err(e) => {
                tracing::error!("recording the decision failed: {e}");
                let e = e.client_view();
                error_redirect(
                    &req.redirect_uri,
                    req.state.as_deref(),
                    &e,
                    self.issuer().as_str(),
                )
            }
        }
    }

    /// Applies a decision and returns where to send the browser.
    async fn apply(
        &self,
        req: &AuthorizeRequest,
        view: &ConsentView,
        answer: &ConsentAnswer,
    ) -> Result<String, GatewayError> {
        let issuer = self.issuer().as_str();
        self.upstreams()
            .consent_decided(&req.code_challenge, answer.decision == Decision::Approve);
        match answer.decision {
            Decision::Deny => {
                tracing::info!(client_id = %req.client_id, upstream = %req.upstream, "consent denied");
                self.record_consent(&ConsentView::of(req), None, self.shown_in());
                let e = OAuthError::new(ErrorCode::AccessDenied, "the user denied access");
                Ok(error_redirect(
                    &req.redirect_uri,
                    req.state.as_deref(),
                    &e,
                    issuer,
                ))
            }
            Decision::Approve => {
                let account = self.chosen_account(&req.upstream, answer.account.as_deref())?;
                let before = self
                    .grant_before_approval(&req.client_id.0, &req.resource.0)
                    .await?;
                let code = mint_secret();
                let t = now();
                let grant = self
                    .inner
                    .store
                    .approve(&NewCode {
                        client_id: &req.client_id,
                        upstream: &req.upstream,
                        resource: &req.resource,
                        scopes: &req.scopes,
                        code: &TokenHash::of(&code),
                        redirect_uri: &req.redirect_uri,
                        code_challenge: &req.code_challenge,
                        expires_at: t + CODE_TTL_SECS,
                        now: t,
                        account: account.as_deref(),
                    })
                    .await?;
                tracing::info!(grant = %grant, client_id = %req.client_id, upstream = %req.upstream, account = account.as_deref().unwrap_or(""), "consent approved");
                self.account_reapproved(before, grant, account.as_deref())
                    .await;
                // Before the code goes out: the client's first call meets the policy.
                self.save_consent_tools(grant, &req.upstream, view.chosen_tools(&answer.tools))
                    .await?;
                self.record_consent(view, Some(grant), self.shown_in());
                self.known_grant(grant, &view.client_name, &req.upstream);
                self.emit(GatewayEvent::GrantApproved {
                    grant_id: grant,
                    client_name: view.client_name.clone(),
                    upstream: req.upstream.clone(),
                });
                Ok(code_redirect(req, &code, issuer))
            }
        }
    }
}
