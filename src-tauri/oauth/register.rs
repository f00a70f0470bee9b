//! RFC 7591 dynamic client registration: a registration request in, the client to
//! store (or the RFC 7591 §3.2.2 error) out.
//!
//! Extra metadata fields are accepted and echoed back (RFC 7591 §2: "The authorization
//! server MUST ignore any client metadata sent by the client that it does not
//! understand"); real clients send `client_uri`, `software_id`, `application_type`, ...

use serde_json::{Map, Value};

use super::{AuthMethod, ErrorCode, OAuthError, UnixTime, redirect};

/// Longest client name kept; it is shown to the user, so it must stay readable.
const MAX_CLIENT_NAME: usize = 120;

/// A validated registration, before ids and secrets are minted.
#[derive(Debug, Clone)]
pub struct Registration {
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub auth_method: AuthMethod,
    /// The full metadata to echo, with normalised `grant_types` and `response_types`.
    pub metadata: Map<String, Value>,
}

fn metadata_error(d: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

/// Validates a registration request body.
pub fn validate_registration(body: &Value) -> Result<Registration, OAuthError> {
    let Some(obj) = body.as_object() else {
        return Err(metadata_error("registration request must be a JSON object"));
    };
    let mut metadata = obj.clone();

    let uris = match obj.get("redirect_uris") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) | None => {
            return Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                "redirect_uris is required",
            ));
        }
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                "redirect_uris must be an array",
            ));
        }
    };
    if uris.len() > redirect::MAX_REDIRECT_URIS {
        return Err(OAuthError::new(
            ErrorCode::InvalidRedirectUri,
            format!("at most {} redirect_uris", redirect::MAX_REDIRECT_URIS),
        ));
    }
    let mut redirect_uris = Vec::with_capacity(uris.len());
    for u in uris {
        let Some(s) = u.as_str() else {
            return Err(OAuthError::new(
                ErrorCode::InvalidRedirectUri,
                "redirect_uris must be strings",
            ));
        };
        redirect::check_registrable(s)
            .map_err(|e| OAuthError::new(ErrorCode::InvalidRedirectUri, e))?;
        if !redirect_uris.iter().any(|x| x == s) {
            redirect_uris.push(s.to_owned());
        }
    }

    // RFC 7591 §2: the default is client_secret_basic when the field is omitted.
    let auth_method = match obj.get("token_endpoint_auth_method") {
        None | Some(Value::Null) => AuthMethod::ClientSecretBasic,
        Some(Value::String(s)) => AuthMethod::parse(s).ok_or_else(|| {
            metadata_error("token_endpoint_auth_method must be none, client_secret_post or client_secret_basic")
        })?,
        Some(_) => return Err(metadata_error("token_endpoint_auth_method must be a string")),
    };

    let grant_types = string_list(obj, "grant_types", &["authorization_code"])?;
    for g in &grant_types {
        if g != "authorization_code" && g != "refresh_token" {
            return Err(metadata_error(format!("unsupported grant_type {g:?}")));
        }
    }
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(metadata_error(
            "grant_types must include authorization_code",
        ));
    }
    let response_types = string_list(obj, "response_types", &["code"])?;
    if response_types.iter().any(|r| r != "code") {
        return Err(metadata_error(
            "only the \"code\" response_type is supported",
        ));
    }

    let client_name = match obj.get("client_name") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => clean_display_text(s),
        Some(_) => return Err(metadata_error("client_name must be a string")),
    };

    metadata.insert("redirect_uris".into(), Value::from(redirect_uris.clone()));
    metadata.insert(
        "token_endpoint_auth_method".into(),
        Value::from(auth_method.as_str()),
    );
    metadata.insert("grant_types".into(), Value::from(grant_types));
    metadata.insert("response_types".into(), Value::from(response_types));
    if !client_name.is_empty() {
        metadata.insert("client_name".into(), Value::from(client_name.clone()));
    }
    // Never echo anything that looks like a secret the client tried to choose itself.
    metadata.remove("client_id");
    metadata.remove("client_secret");
    metadata.remove("client_secret_expires_at");
    metadata.remove("client_id_issued_at");

    Ok(Registration {
        client_name,
        redirect_uris,
        auth_method,
        metadata,
    })
}

fn string_list(
    obj: &Map<String, Value>,
    key: &str,
    default: &[&str],
) -> Result<Vec<String>, OAuthError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default.iter().map(|s| s.to_string()).collect()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| metadata_error(format!("{key} must be strings")))
            })
            .collect(),
        Some(_) => Err(metadata_error(format!("{key} must be an array"))),
    }
}

/// Control characters and bidi overrides could disguise a name on the consent screen.
pub fn clean_display_text(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(*c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    let trimmed = cleaned.trim();
    trimmed.chars().take(MAX_CLIENT_NAME).collect()
}

/// The RFC 7591 §3.2.1 response body.
pub fn registration_response(
    reg: &Registration,
    client_id: &str,
    client_secret: Option<&str>,
    issued_at: UnixTime,
) -> Value {
    let mut m = reg.metadata.clone();
    m.insert("client_id".into(), Value::from(client_id));
    m.insert("client_id_issued_at".into(), Value::from(issued_at));
    if let Some(s) = client_secret {
        m.insert("client_secret".into(), Value::from(s));
        m.insert("client_secret_expires_at".into(), Value::from(0));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn public_client_with_extra_fields() {
        let r = validate_registration(&json!({
            "client_name": "mcp-remote",
            "redirect_uris": ["http://localhost:4000/oauth/callback"],
            "token_endpoint_auth_method": "none",
            "software_id": "x", "application_type": "native", "scope": "mcp"
        }))
        .unwrap();
        assert_eq!(r.auth_method, AuthMethod::None);
        assert_eq!(r.metadata["software_id"], "x");
        assert_eq!(r.metadata["grant_types"], json!(["authorization_code"]));
        let resp = registration_response(&r, "cid", None, 5);
        assert_eq!(resp["client_id"], "cid");
        assert!(resp.get("client_secret").is_none());
    }

    #[test]
    fn default_method_is_client_secret_basic() {
        let r = validate_registration(&json!({"redirect_uris": ["https://a.example/cb"]})).unwrap();
        assert_eq!(r.auth_method, AuthMethod::ClientSecretBasic);
        let resp = registration_response(&r, "cid", Some("s3cret"), 5);
        assert_eq!(resp["client_secret"], "s3cret");
    }

    #[test]
    fn refusals() {
        let eleven: Vec<String> = (0..11).map(|i| format!("http://127.0.0.1/cb{i}")).collect();
        let cases = [
            (json!([]), ErrorCode::InvalidClientMetadata),
            (json!({}), ErrorCode::InvalidRedirectUri),
            (json!({"redirect_uris": []}), ErrorCode::InvalidRedirectUri),
            (
                json!({"redirect_uris": ["http://evil.example/cb"]}),
                ErrorCode::InvalidRedirectUri,
            ),
            (
                json!({"redirect_uris": eleven}),
                ErrorCode::InvalidRedirectUri,
            ),
            (
                json!({"redirect_uris": ["https://a/cb"], "token_endpoint_auth_method": "private_key_jwt"}),
                ErrorCode::InvalidClientMetadata,
            ),
            (
                json!({"redirect_uris": ["https://a/cb"], "grant_types": ["implicit"]}),
                ErrorCode::InvalidClientMetadata,
            ),
            (
                json!({"redirect_uris": ["https://a/cb"], "response_types": ["token"]}),
                ErrorCode::InvalidClientMetadata,
            ),
            (
                json!({"redirect_uris": ["https://a/cb"], "client_name": 5}),
                ErrorCode::InvalidClientMetadata,
            ),
        ];
        for (body, code) in cases {
            assert_eq!(
                validate_registration(&body).unwrap_err().code,
                code,
                "{body}"
            );
        }
    }

    #[test]
    fn client_chosen_ids_are_not_echoed_and_names_are_cleaned() {
        let r = validate_registration(&json!({
            "redirect_uris": ["https://a/cb"], "client_id": "mine", "client_secret": "mine",
            "client_name": " Evil\u{202E}txt.exe\n "
        }))
        .unwrap();
        assert!(!r.metadata.contains_key("client_id"));
        assert!(!r.metadata.contains_key("client_secret"));
        assert_eq!(r.client_name, "Eviltxt.exe");
    }
}
