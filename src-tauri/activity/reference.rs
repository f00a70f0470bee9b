//! Reference ids: eight characters of Crockford base32 (no I, L, O, U: nothing to misread
//! when a person reads one out), minted for every error the broker itself produces. The
//! same id goes to the person, the tracing log and the activity log, so "send us the
//! reference" leads to the cause.

use std::fmt;

use rand::RngCore;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Reference([u8; 8]);

impl Reference {
    /// A fresh id: 40 random bits, plenty to tell one machine's errors apart.
    pub fn mint() -> Reference {
        let mut raw = [0u8; 8];
        rand::rng().fill_bytes(&mut raw);
        Reference(raw.map(|b| ALPHABET[usize::from(b & 31)]))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII from ALPHABET is ever stored.
        std::str::from_utf8(&self.0).unwrap_or("????????")
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({})", self.as_str())
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_eight_unambiguous_characters_and_differ() {
        let a = Reference::mint();
        let b = Reference::mint();
        assert_eq!(a.as_str().len(), 8);
        assert!(a.as_str().bytes().all(|c| ALPHABET.contains(&c)));
        assert!(!a.as_str().contains(['I', 'L', 'O', 'U']));
        assert_ne!(a, b);
    }
}
