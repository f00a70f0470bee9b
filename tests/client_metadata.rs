//! Client ID Metadata Documents end to end: a real broker on 127.0.0.1:0, and the
//! client's metadata document served over real HTTPS from loopback with a test CA made by
//! rcgen. The broker trusts that CA and that loopback address only through the test-only
//! `[broker.test_client_metadata]` setting, which it logs as a warning.
//!
//! Shown: discovery advertises support; a document client gets consent (its
//! `client_name` and the host of its document on the page), a code on a random loopback
//! port, tokens as a public client, and a refresh; the document is cached per its
//! `Cache-Control`; and the refusals: a mismatched `client_id`, an oversized document, a
//! redirect (not followed), and private or loopback addresses (by name and by literal).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use mcp_broker::consent::ConsentMode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

mod support;
use support::{hidden, http, pkce, post_token};

// ---- captured logs -------------------------------------------------------------------

#[derive(Clone)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);
impl Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static LogBuf {
    static LOGS: OnceLock<LogBuf> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuf(Arc::new(Mutex::new(Vec::new())));
        let w = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .try_init();
        buf
    })
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

// ---- the client's HTTPS server ---------------------------------------------------------

struct DocServer {
    port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    ca_pem: String,
}

impl DocServer {
    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn response(status: &str, headers: &[(&str, String)], body: &str) -> String {
    let mut r = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str("\r\n");
    r.push_str(body);
    r
}

async fn start_doc_server() -> DocServer {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mcp-broker test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let h2 = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let hits = h2.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut req = Vec::new();
                let mut buf = [0u8; 2048];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned();
                let path = line.split(' ').nth(1).unwrap_or("/").to_owned();
                *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                let me = |p: &str| format!("https://localhost:{port}{p}");
                let doc = |id: String, name: &str| {
                    json!({
                        "client_id": id,
                        "client_name": name,
                        "client_uri": "https://app.example.com",
                        "redirect_uris": ["http://127.0.0.1/callback"],
                        "grant_types": ["authorization_code", "refresh_token"],
                        "response_types": ["code"],
                        "token_endpoint_auth_method": "none"
                    })
                    .to_string()
                };
                let json_ct = ("Content-Type", "application/json".to_string());
                let r = match path.as_str() {
                    "/good.json" => response(
                        "200 OK",
                        &[json_ct, ("Cache-Control", "public, max-age=300".into())],
                        &doc(me("/good.json"), "CIMD Test App"),
                    ),
                    "/nostore.json" => response(
                        "200 OK",
                        &[json_ct, ("Cache-Control", "no-store".into())],
                        &doc(me("/nostore.json"), "Uncached App"),
                    ),
                    "/mismatch.json" => {
                        response("200 OK", &[json_ct], &doc(me("/good.json"), "Impostor"))
                    }
                    "/big.json" => {
                        let mut v: Value =
                            serde_json::from_str(&doc(me("/big.json"), "Big")).unwrap();
                        v["padding"] = Value::from("x".repeat(6 * 1024));
                        response("200 OK", &[json_ct], &v.to_string())
                    }
                    "/redirect.json" => {
                        response("302 Found", &[("Location", me("/good.json"))], "")
                    }
                    _ => response("404 Not Found", &[], "no"),
                };
                let _ = s.write_all(r.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    DocServer {
        port,
        hits,
        ca_pem: ca.pem(),
    }
}

// ---- the broker ----------------------------------------------------------------------

struct Broker {
    base: String,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

async fn start_broker(test_setting: Option<(&Path, &str)>) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let mut toml = String::new();
    if let Some((ca, addr)) = test_setting {
        toml.push_str(&format!(
            "[broker.test_client_metadata]\nca_file = {:?}\nallow_addresses = [{addr:?}]\n",
            ca.to_str().unwrap()
        ));
    }
    toml.push_str("[servers.notes]\nurl = \"https://notes.example.com/mcp\"\n");
    let config = mcp_broker::config::parse(&dir.path().join("c.toml"), &toml).unwrap();
    let running = mcp_broker::app::start(config, dir.path().to_owned(), 0, ConsentMode::Page)
        .await
        .unwrap();
    let base = running.gateway().issuer().to_string();
    tokio::spawn(running.until(std::future::pending()));
    Broker {
        base,
        _dir: dir,
        http: http(),
    }
}

impl Broker {
    async fn authorize(
        &self,
        client_id: &str,
        redirect_uri: &str,
        challenge: &str,
    ) -> (u16, String) {
        let mut u = url::Url::parse(&format!("{}/authorize", self.base)).unwrap();
        u.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("state", "st-1")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", &format!("{}/mcp/notes", self.base));
        let r = self.http.get(u).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn approve(&self, page: &str) -> String {
        let r = self
            .http
            .post(format!("{}/authorize/consent", self.base))
            .header("Origin", &self.base)
            .form(&[
                ("consent_id", hidden(page, "consent_id")),
                ("csrf_token", hidden(page, "csrf_token")),
                ("decision", "approve".into()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 302);
        r.headers()["location"].to_str().unwrap().to_owned()
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let r = post_token(&self.http, &self.base, form).await;
        (r.status().as_u16(), r.json().await.unwrap())
    }
}

// ---- the tests -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_metadata_documents() {
    logs();
    let docs = start_doc_server().await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &docs.ca_pem).unwrap();
    let broker = start_broker(Some((&ca_file, "127.0.0.1"))).await;

    // The test-only setting is announced loudly.
    let log = log_text();
    assert!(
        log.contains("WARN") && log.contains("TEST-ONLY SETTING ON"),
        "{log}"
    );

    // Discovery says CIMD is supported.
    let asm: Value = broker
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            broker.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asm["client_id_metadata_document_supported"], true);

    // A document client: consent shows its name and its document's host.
    let client_id = docs.url("/good.json");
    let (verifier, challenge) = pkce();
    let redirect = "http://127.0.0.1:53682/callback"; // any loopback port (RFC 8252 §7.3)
    let (status, page) = broker.authorize(&client_id, redirect, &challenge).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("CIMD Test App"), "{page}");
    assert!(page.contains(&format!("localhost:{}", docs.port)), "{page}");
    assert_eq!(docs.hits("/good.json"), 1);

    let location = broker.approve(&page).await;
    let loc = url::Url::parse(&location).unwrap();
    assert!(location.starts_with(redirect), "{location}");
    let q: HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["state"], "st-1");

    // The token endpoint takes it as a public client (no secret).
    let (status, tok) = broker
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", redirect),
            ("code_verifier", &verifier),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(status, 200, "{tok}");
    assert!(tok["access_token"].is_string());
    let (status, refreshed) = broker
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tok["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(status, 200, "{refreshed}");
    // A secret for it is refused: it is public.
    let (status, err) = broker
        .token(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                refreshed["refresh_token"].as_str().unwrap(),
            ),
            ("client_id", &client_id),
            ("client_secret", "guess"),
        ])
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // Cached per Cache-Control (max-age=300): a second authorization fetches nothing.
    let (status, _) = broker.authorize(&client_id, redirect, &pkce().1).await;
    assert_eq!(status, 200);
    assert_eq!(docs.hits("/good.json"), 1);
    // no-store: fetched every time.
    for n in 1..=2 {
        let (status, page) = broker
            .authorize(&docs.url("/nostore.json"), redirect, &pkce().1)
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(docs.hits("/nostore.json"), n);
    }
    // A redirect URI the document does not list is refused without redirecting.
    let (status, page) = broker
        .authorize(&client_id, "http://127.0.0.1:5/elsewhere", &pkce().1)
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("redirect_uri is not registered"), "{page}");

    // Refusals: each is an error page (400), never a redirect.
    let refusals = [
        (
            docs.url("/mismatch.json"),
            "not the URL it was fetched from",
        ),
        (docs.url("/big.json"), "larger than 5120 bytes"),
        (
            docs.url("/redirect.json"),
            "redirect, which is not followed",
        ),
        (
            "https://10.0.0.1/client.json".into(),
            "private, loopback or link-local",
        ),
        (
            "https://169.254.169.254/latest/meta-data".into(),
            "private, loopback or link-local",
        ),
        (
            "https://[::1]/client.json".into(),
            "private, loopback or link-local",
        ),
        ("http://localhost/client.json".into(), "unknown client_id"),
        (
            format!("https://localhost:{}/", docs.port),
            "must contain a path",
        ),
    ];
    let good_hits = docs.hits("/good.json");
    for (id, want) in refusals {
        let (status, page) = broker.authorize(&id, redirect, &pkce().1).await;
        assert_eq!(status, 400, "{id}: {page}");
        assert!(page.contains(want), "{id}: want {want:?} in {page}");
    }
    // The redirect was not followed.
    assert_eq!(docs.hits("/redirect.json"), 1);
    assert_eq!(docs.hits("/good.json"), good_hits);

    // Without the test setting, the same loopback server is refused after DNS
    // resolution (localhost -> 127.0.0.1), before any connection is made.
    let plain = start_broker(None).await;
    let before = docs.hits("/nostore.json");
    let (status, page) = plain
        .authorize(&docs.url("/nostore.json"), redirect, &pkce().1)
        .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("private, loopback or link-local"), "{page}");
    assert!(page.contains("localhost"), "{page}");
    assert_eq!(docs.hits("/nostore.json"), before);

    // And a broker whose test CA cannot be loaded does not advertise the feature.
    let broken = start_broker(Some((&dir.path().join("missing.pem"), "127.0.0.1"))).await;
    let asm: Value = broken
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            broken.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(asm["client_id_metadata_document_supported"], false);
}
