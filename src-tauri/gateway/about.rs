//! What the app is and how it starts: the version and where its data and configuration
//! live (the window's About), and starting at login (the window's and the tray's switch;
//! `mcp-broker autostart` calls the same [`crate::autostart`] module, so all three agree).
//! Starting at login is offered once, on the first start, and never again after an answer.

use std::path::PathBuf;

use serde::Serialize;

use super::{Gateway, GatewayError};

/// The file whose presence says the person answered the start-at-login offer.
const OFFERED_FILE: &str = "start-at-login-offered";

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct About {
    pub version: String,
    pub data_dir: String,
    pub config_file: String,
    /// `None`: the login item could not be read (`start_at_login_error` says why).
    pub start_at_login: Option<bool>,
    pub start_at_login_error: Option<String>,
    /// Ask whether to start at login: off, and never answered.
    pub offer_start_at_login: bool,
}

impl Gateway {
    pub fn about(&self) -> About {
        let (start_at_login, start_at_login_error) = match crate::autostart::status() {
            Ok(s) => (Some(s.enabled), None),
            Err(e) => (None, Some(e.to_string())),
        };
        About {
            version: crate::VERSION.to_owned(),
            data_dir: self.data_dir().display().to_string(),
            config_file: self.config().path.display().to_string(),
            offer_start_at_login: start_at_login == Some(false) && !self.offered_file().exists(),
            start_at_login,
            start_at_login_error,
        }
    }

    /// Turns starting at login on or off (the login item starts this data dir, minimised
    /// to the tray), and records that the offer was answered.
    pub fn set_start_at_login(&self, on: bool) -> Result<About, GatewayError> {
        let r = if on {
            crate::autostart::enable(Some(self.data_dir()))
        } else {
            crate::autostart::disable()
        };
        r.map_err(|e| GatewayError::StartAtLogin(e.to_string()))?;
        self.answered_start_at_login_offer();
        Ok(self.about())
    }

    /// "Not now" to the first-start offer.
    pub fn dismiss_start_at_login_offer(&self) -> About {
        self.answered_start_at_login_offer();
        self.about()
    }

    fn offered_file(&self) -> PathBuf {
        self.data_dir().join(OFFERED_FILE)
    }

    fn answered_start_at_login_offer(&self) {
        if let Err(e) = std::fs::write(self.offered_file(), b"") {
            tracing::warn!("cannot record the start-at-login answer: {e}");
        }
    }
}
