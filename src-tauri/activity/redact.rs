//! Tool arguments for the activity log, for an upstream that opts in (`[broker]
//! log_arguments = ["NAME"]`): `params.arguments` of a `tools/call` with every value that
//! looks secret replaced by `<redacted>` — values under a secret-sounding key, and strings
//! shaped like credentials (known token prefixes, `Bearer ...`, long unbroken random-looking
//! strings). Deliberately over-eager: a log that hides a harmless value is fine, one that
//! keeps a key is not.

use serde_json::Value;

const REDACTED: &str = "<redacted>";

/// Keys whose values are never recorded (matched case-insensitively, as substrings).
const SECRET_KEYS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "key",
    "auth",
    "credential",
    "cookie",
    "session",
    "signature",
    "private",
];

/// Prefixes of well-known credentials.
const SECRET_PREFIXES: &[&str] = &[
    "sk-",
    "sk_",
    "pk_",
    "rk_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "github_pat_",
    "xox",
    "glpat-",
    "AKIA",
    "ASIA",
    "AIza",
    "ya29.",
    "eyJ",
    "Bearer ",
    "Basic ",
    "npm_",
    "pypi-",
];

/// The request's `params.arguments`, redacted, as compact JSON; `None` when it has none.
pub fn arguments(raw_request: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Req {
        params: Option<Params>,
    }
    #[derive(serde::Deserialize)]
    struct Params {
        arguments: Option<Value>,
    }
    let mut args = serde_json::from_slice::<Req>(raw_request)
        .ok()?
        .params?
        .arguments?;
    redact(&mut args);
    Some(args.to_string())
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                let k = k.to_ascii_lowercase();
                if SECRET_KEYS.iter().any(|s| k.contains(s)) {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        Value::String(s) if looks_secret(s) => *s = REDACTED.into(),
        _ => {}
    }
}

fn looks_secret(s: &str) -> bool {
    if SECRET_PREFIXES.iter().any(|p| s.starts_with(p)) {
        return true;
    }
    // A long token without spaces mixing letters and digits: an API key or a hash.
    s.len() >= 24
        && !s.contains(char::is_whitespace)
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars().any(|c| c.is_ascii_alphabetic())
        && !s.contains("://")
        && !s.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_and_credential_shaped_strings_are_redacted_the_rest_kept() {
        let raw = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{
            "query":"weather in Paris","api_key":"abc","nested":{"Authorization":"x","n":3},
            "list":["sk-live-123","plain words"],"blob":"a8f3k2l9q0w8e7r6t5y4u3i2o1p0","path":"/tmp/a/b/c/d/e/f/g/h/1234"}}}"#;
        let out = arguments(raw).unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["query"], "weather in Paris");
        assert_eq!(v["api_key"], REDACTED);
        assert_eq!(v["nested"]["Authorization"], REDACTED);
        assert_eq!(v["nested"]["n"], 3);
        assert_eq!(v["list"][0], REDACTED);
        assert_eq!(v["list"][1], "plain words");
        assert_eq!(v["blob"], REDACTED);
        assert_eq!(v["path"], "/tmp/a/b/c/d/e/f/g/h/1234");
        assert!(!out.contains("sk-live") && !out.contains("abc"));
    }

    #[test]
    fn a_request_without_arguments_records_none() {
        assert_eq!(
            arguments(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            None
        );
    }
}
