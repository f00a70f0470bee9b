//! PKCE (RFC 7636) with the `S256` method only, as OAuth 2.1 §4.1.1 and the MCP
//! authorization spec require. `plain` is refused: it gives no protection against a
//! leaked authorization request (RFC 9700 §2.1.1).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// `code-verifier = 43*128unreserved` (RFC 7636 §4.1). The same alphabet and bounds
/// hold for a challenge; an S256 challenge is exactly 43 characters.
fn is_verifier_syntax(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Checks a `code_challenge` sent with `code_challenge_method=S256`.
pub fn is_valid_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// RFC 7636 §4.6: `BASE64URL-ENCODE(SHA256(ASCII(code_verifier))) == code_challenge`.
pub fn verify_s256(verifier: &str, challenge: &str) -> bool {
    if !is_verifier_syntax(verifier) {
        return false;
    }
    let digest = Sha256::digest(verifier.as_bytes());
    let computed = URL_SAFE_NO_PAD.encode(digest);
    super::constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector_verifies() {
        assert!(is_valid_s256_challenge(CHALLENGE));
        assert!(verify_s256(VERIFIER, CHALLENGE));
    }

    #[test]
    fn wrong_or_malformed_verifiers_fail() {
        let cases = [
            (
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
                "one character off",
            ),
            ("short", "too short"),
            (&"a".repeat(129), "too long"),
            (
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX!",
                "bad alphabet",
            ),
            // `plain`: the verifier equal to the challenge must not pass.
            (CHALLENGE, "plain method"),
        ];
        for (verifier, why) in cases {
            assert!(!verify_s256(verifier, CHALLENGE), "{why}");
        }
    }

    #[test]
    fn challenge_syntax() {
        assert!(!is_valid_s256_challenge(""));
        assert!(!is_valid_s256_challenge(&CHALLENGE[..42]));
        assert!(!is_valid_s256_challenge(&format!("{CHALLENGE}=")));
        assert!(!is_valid_s256_challenge(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"
        ));
    }
}
