//! The sealed `requestState` of an `input_required` result (MCP 2026-07-28
//! basic/patterns/mrtr §Server Requirements 4–5): the client echoes it verbatim on its
//! retry, so it is attacker-controlled. It names the parked upstream call and is bound
//! to the grant, the upstream, an expiry and a digest of the method and name; an
//! HMAC-SHA256 with a key that lives only in this process seals it. One-time use is
//! enforced by the park table (a handle is taken once).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::oauth::{GrantId, UnixTime};

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sealed {
    #[serde(rename = "g")]
    pub grant: GrantId,
    #[serde(rename = "u")]
    pub upstream: String,
    /// The park-table handle of the waiting upstream call.
    #[serde(rename = "h")]
    pub handle: u64,
    #[serde(rename = "e")]
    pub expires: UnixTime,
    /// SHA-256 of `method` NUL `name`, hex.
    #[serde(rename = "d")]
    pub digest: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("requestState is not one this broker issued")]
    Forged,
    #[error("requestState has expired")]
    Expired,
    #[error("requestState belongs to another authorization or request")]
    Mismatch,
}

pub fn digest(method: &str, name: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(name.unwrap_or("").as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Sealer {
    key: [u8; 32],
}

impl Sealer {
    pub fn new(key: [u8; 32]) -> Sealer {
        Sealer { key }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length.
        HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }

    pub fn seal(&self, s: &Sealed) -> String {
        let payload = serde_json::to_vec(s).unwrap_or_default();
        let mut mac = self.mac();
        mac.update(&payload);
        let tag = mac.finalize().into_bytes();
        format!("{}.{}", B64.encode(&payload), B64.encode(tag))
    }

    /// The sealed handle, if it is authentic, unexpired and bound to this caller and
    /// request.
    pub fn open(
        &self,
        token: &str,
        grant: GrantId,
        upstream: &str,
        digest: &str,
        now: UnixTime,
    ) -> Result<Sealed, StateError> {
        let (p, t) = token.split_once('.').ok_or(StateError::Forged)?;
        let payload = B64.decode(p).map_err(|_| StateError::Forged)?;
        let tag = B64.decode(t).map_err(|_| StateError::Forged)?;
        let mut mac = self.mac();
        mac.update(&payload);
        mac.verify_slice(&tag).map_err(|_| StateError::Forged)?;
        let s: Sealed = serde_json::from_slice(&payload).map_err(|_| StateError::Forged)?;
        if s.expires <= now {
            return Err(StateError::Expired);
        }
        if s.grant != grant || s.upstream != upstream || s.digest != digest {
            return Err(StateError::Mismatch);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_binds_grant_request_and_time() {
        let k = Sealer::new([7; 32]);
        let d = digest("tools/call", Some("ask"));
        let s = Sealed {
            grant: GrantId(3),
            upstream: "every".into(),
            handle: 9,
            expires: 1000,
            digest: d.clone(),
        };
        let tok = k.seal(&s);
        assert_eq!(k.open(&tok, GrantId(3), "every", &d, 999), Ok(s));
        assert_eq!(
            k.open(&tok, GrantId(3), "every", &d, 1000),
            Err(StateError::Expired)
        );
        assert_eq!(
            k.open(&tok, GrantId(4), "every", &d, 999),
            Err(StateError::Mismatch)
        );
        assert_eq!(
            k.open(&tok, GrantId(3), "other", &d, 999),
            Err(StateError::Mismatch)
        );
        let d2 = digest("tools/call", Some("other-tool"));
        assert_eq!(
            k.open(&tok, GrantId(3), "every", &d2, 999),
            Err(StateError::Mismatch)
        );
        // Another process's key, or a flipped byte: forged.
        assert_eq!(
            Sealer::new([8; 32]).open(&tok, GrantId(3), "every", &d, 999),
            Err(StateError::Forged)
        );
        let mut bad = tok.clone().into_bytes();
        bad[3] ^= 1;
        let bad = String::from_utf8(bad).unwrap();
        assert_eq!(
            k.open(&bad, GrantId(3), "every", &d, 999),
            Err(StateError::Forged)
        );
        assert_eq!(
            k.open("garbage", GrantId(3), "every", &d, 999),
            Err(StateError::Forged)
        );
    }
}
