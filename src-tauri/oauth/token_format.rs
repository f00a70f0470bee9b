//! The shape of the bearer tokens this server issues, so that the MCP endpoint can refuse
//! a token it never issued without a database lookup (RFC 6750 §5.2: bearer tokens must be
//! unguessable; this adds "and recognisable as ours").
//!
//! An access token is a prefix (`mcpb_at_`, or `mcpb_pat_` for a personal one, as secret
//! scanners know them from GitHub's `ghp_`), 256 random bits in base64url, and a check:
//! the first 6 bytes of HMAC-SHA256 over prefix and random part, under a key every process
//! on the data dir shares (`store::Store::token_check`). Without the key a valid-looking
//! token cannot be made, so a flood of made-up tokens costs one HMAC each, never a lookup.
//!
//! Tokens issued before the check existed (43 base64url characters, or `mcpb_pat_` and 43)
//! are [`Shape::Legacy`] while any of their kind can still be alive.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::UnixTime;
use super::mint_secret;
use super::personal::TOKEN_PREFIX as PERSONAL_PREFIX;

/// Starts every OAuth access token issued with a check.
pub const ACCESS_PREFIX: &str = "mcpb_at_";
/// base64url of 32 random bytes.
const RANDOM_CHARS: usize = 43;
/// base64url of the 6 check bytes.
const CHECK_CHARS: usize = 8;
const CHECK_BYTES: usize = 6;

/// The key of the check, shared by every process on one database.
#[derive(Clone)]
pub struct CheckKey([u8; 32]);

impl CheckKey {
    pub fn from_slice(b: &[u8]) -> Option<CheckKey> {
        Some(CheckKey(b.try_into().ok()?))
    }

    fn check(&self, body: &str) -> [u8; CHECK_BYTES] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(body.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; CHECK_BYTES];
        out.copy_from_slice(&full[..CHECK_BYTES]);
        out
    }

    fn mint(&self, prefix: &str) -> String {
        let mut t = format!("{prefix}{}", mint_secret());
        let check = self.check(&t);
        URL_SAFE_NO_PAD.encode_string(check, &mut t);
        t
    }

    /// A fresh OAuth access token.
    pub fn mint_access(&self) -> String {
        self.mint(ACCESS_PREFIX)
    }

    /// A fresh personal access token.
    pub fn mint_personal(&self) -> String {
        self.mint(PERSONAL_PREFIX)
    }

    fn verifies(&self, token: &str, prefix: &str) -> bool {
        let Some((body, check)) = token.split_at_checked(prefix.len() + RANDOM_CHARS) else {
            return false;
        };
        let mut got = [0u8; CHECK_BYTES];
        matches!(
            URL_SAFE_NO_PAD.decode_slice(check, &mut got),
            Ok(CHECK_BYTES)
        ) && super::constant_time_eq(&got, &self.check(body))
    }
}

impl std::fmt::Debug for CheckKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckKey(..)")
    }
}

/// Until when tokens issued before the check may still be alive (`None`: there are none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegacyWindow {
    pub access_until: Option<UnixTime>,
    pub personal_until: Option<UnixTime>,
}

/// What the shape of a presented token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Carries a valid check: worth a lookup.
    Checked,
    /// Shaped like a token from before the check, while such tokens may be alive: worth a
    /// lookup (and a negative cache entry if unknown).
    Legacy,
    /// Not a token this server issued or could still honour: refuse without a lookup.
    Foreign,
}

fn is_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Classifies a presented access token.
pub fn shape(token: &str, key: &CheckKey, legacy: LegacyWindow, now: UnixTime) -> Shape {
    let alive = |until: Option<UnixTime>| until.is_some_and(|u| now < u);
    let checked = RANDOM_CHARS + CHECK_CHARS;
    for (prefix, until) in [
        (ACCESS_PREFIX, None),
        (PERSONAL_PREFIX, legacy.personal_until),
    ] {
        if let Some(rest) = token.strip_prefix(prefix) {
            return if rest.len() == checked && is_b64url(rest) && key.verifies(token, prefix) {
                Shape::Checked
            } else if rest.len() == RANDOM_CHARS && is_b64url(rest) && alive(until) {
                Shape::Legacy
            } else {
                Shape::Foreign
            };
        }
    }
    if token.len() == RANDOM_CHARS && is_b64url(token) && alive(legacy.access_until) {
        Shape::Legacy
    } else {
        Shape::Foreign
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = 1_800_000_000;

    fn key(b: u8) -> CheckKey {
        CheckKey([b; 32])
    }

    #[test]
    fn minted_tokens_check_out_under_their_key_only() {
        let k = key(1);
        for t in [k.mint_access(), k.mint_personal()] {
            assert_eq!(
                shape(&t, &k, LegacyWindow::default(), NOW),
                Shape::Checked,
                "{t}"
            );
            assert_eq!(
                shape(&t, &key(2), LegacyWindow::default(), NOW),
                Shape::Foreign
            );
            assert!(crate::oauth::bearer::parse_bearer(Some(&format!("Bearer {t}"))).is_ok());
        }
        let t = k.mint_access();
        assert!(t.starts_with(ACCESS_PREFIX));
        assert_eq!(t.len(), ACCESS_PREFIX.len() + 51);
        assert_ne!(t, k.mint_access());
    }

    #[test]
    fn any_change_to_a_token_fails_the_check() {
        let k = key(1);
        let t = k.mint_access();
        for i in ACCESS_PREFIX.len()..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(b).unwrap();
            assert_eq!(
                shape(&bad, &k, LegacyWindow::default(), NOW),
                Shape::Foreign,
                "{i}"
            );
        }
        // A personal token's body under the access prefix is not an access token.
        let p = k.mint_personal();
        let moved = format!("{ACCESS_PREFIX}{}", &p[PERSONAL_PREFIX.len()..]);
        assert_eq!(
            shape(&moved, &k, LegacyWindow::default(), NOW),
            Shape::Foreign
        );
    }

    #[test]
    fn garbage_is_foreign() {
        let k = key(1);
        let w = LegacyWindow {
            access_until: Some(NOW + 10),
            personal_until: Some(NOW + 10),
        };
        for t in [
            "",
            "x",
            "mcpb_at_",
            "mcpb_at_short",
            &"a".repeat(44),
            &"a".repeat(42),
            "mcpb_pat_abc",
        ] {
            assert_eq!(shape(t, &k, w, NOW), Shape::Foreign, "{t:?}");
        }
        let made_up = format!("{ACCESS_PREFIX}{}{}", "a".repeat(43), "b".repeat(8));
        assert_eq!(shape(&made_up, &k, w, NOW), Shape::Foreign);
    }

    #[test]
    fn legacy_shapes_are_looked_up_only_while_they_can_be_alive() {
        let k = key(1);
        let old_access = mint_secret();
        let old_personal = format!("{PERSONAL_PREFIX}{}", mint_secret());
        let w = LegacyWindow {
            access_until: Some(NOW + 10),
            personal_until: None,
        };
        assert_eq!(shape(&old_access, &k, w, NOW), Shape::Legacy);
        assert_eq!(shape(&old_access, &k, w, NOW + 10), Shape::Foreign);
        assert_eq!(shape(&old_personal, &k, w, NOW), Shape::Foreign);
        let w = LegacyWindow {
            access_until: None,
            personal_until: Some(super::super::personal::NEVER_EXPIRES),
        };
        assert_eq!(shape(&old_personal, &k, w, NOW), Shape::Legacy);
        assert_eq!(shape(&old_access, &k, w, NOW), Shape::Foreign);
    }
}
