//! A call's arguments as the approval window shows them: indented JSON, whole, with
//! values that look like secrets masked (by their key, such as `password` or `api_key`,
//! or by their shape, such as `sk-…` or `ghp_…` tokens), so approving a call on a shared
//! screen does not show a key to whoever looks.

use serde_json::Value;

const MASK: &str = "•••••• (hidden)";

/// Key fragments that name a secret (compared in lower case, without `-` and `_`).
const SECRET_KEYS: [&str; 10] = [
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "privatekey",
    "cookie",
    "accesskey",
];

/// Prefixes of well-known token formats.
const SECRET_PREFIXES: [&str; 9] = [
    "sk-",
    "ghp_",
    "gho_",
    "github_pat_",
    "xoxb-",
    "xoxp-",
    "AKIA",
    "glpat-",
    "Bearer ",
];

/// The arguments, pretty-printed with secrets masked. `None` arguments show as `{}`.
pub fn readable_arguments(arguments: Option<&Value>) -> String {
    let mut v = arguments
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()));
    mask(&mut v, false);
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

fn mask(v: &mut Value, secret_key: bool) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                mask(x, secret_key || is_secret_key(k));
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| mask(x, secret_key)),
        Value::String(s) if secret_key || looks_secret(s) => *s = MASK.to_owned(),
        Value::Number(_) | Value::Bool(_) if secret_key => *v = Value::String(MASK.to_owned()),
        _ => {}
    }
}

fn is_secret_key(k: &str) -> bool {
    let k: String = k
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_KEYS.iter().any(|s| k.contains(s))
}

fn looks_secret(s: &str) -> bool {
    if SECRET_PREFIXES.iter().any(|p| s.starts_with(p)) && s.len() >= 12 {
        return true;
    }
    // A long run of token characters with letters and digits mixed: a key or a JWT.
    s.len() >= 32
        && !s.contains(char::is_whitespace)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.=+/".contains(c))
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars().any(|c| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_masked_and_everything_else_is_shown_whole() {
        let long = "x".repeat(500);
        let args = json!({
            "path": "/home/me/notes.txt",
            "text": long,
            "api_key": "abc",
            "headers": {"Authorization": "Bearer abc.def", "X-Trace": "1"},
            "nested": [{"password": 1234}],
            "pasted": "sk-proj-0123456789abcdef",
            "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpM"
        });
        let out = readable_arguments(Some(&args));
        for hidden in ["abc", "abc.def", "1234", "sk-proj", "eyJhbGci"] {
            assert!(
                !out.contains(&format!("\"{hidden}")),
                "{hidden} shown: {out}"
            );
        }
        assert!(
            out.contains("/home/me/notes.txt") && out.contains(&long),
            "{out}"
        );
        assert!(out.contains("\"X-Trace\": \"1\""), "{out}");
        assert_eq!(readable_arguments(None), "{}");
    }
}
