//! `upstream login NAME` and `upstream logout NAME`: the broker's own sign-in to a remote
//! upstream. Login goes through the running broker, because the authorization server
//! sends the browser back to the broker (`/upstream-callback/NAME`); the command opens
//! the browser and waits until the sign-in is done. Logout asks the running broker (so
//! its sessions stop using the tokens at once) and, when none runs, revokes and deletes
//! the stored tokens itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::UpstreamCommand;
use crate::proxy::upstream_oauth::UpstreamOAuth;
use crate::vault::Vault;

pub fn run(cmd: UpstreamCommand) -> i32 {
    let Some(rt) = super::runtime() else {
        return 1;
    };
    let (name, account, target, no_browser, login) = match cmd {
        UpstreamCommand::Login {
            name,
            account,
            target,
            no_browser,
        } => (name, account, target, no_browser, true),
        UpstreamCommand::Logout {
            name,
            account,
            target,
        } => (name, account, target, true, false),
    };
    let path = target.config.clone().unwrap_or_else(super::default_config);
    let config = crate::config::load(&path);
    if let (Some(a), Ok(c)) = (&account, &config)
        && let Some(up) = c.upstream(&name)
        && !up.accounts.contains_key(a)
    {
        let known = up.account_names().join(", ");
        eprintln!(
            "mcp-broker: config error in {}: servers.{name}.accounts: no account named \"{a}\" ({})",
            path.display(),
            if known.is_empty() {
                "this upstream has no accounts".to_owned()
            } else {
                format!("its accounts: {known}")
            }
        );
        return 2;
    }
    let port = match target.port {
        Some(p) => p,
        None => match config {
            Ok(c) => c.port(),
            Err(_) if target.config.is_none() => crate::config::DEFAULT_PORT,
            Err(e) => {
                eprintln!("mcp-broker: {e}");
                return 2;
            }
        },
    };
    let name = crate::config::sign_in_id(&name, account.as_deref());
    let base = format!("http://127.0.0.1:{port}");
    let http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mcp-broker: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        if login {
            login_via(&http, &base, &name, no_browser).await
        } else {
            logout_via(&http, &base, &name).await
        }
    })
}

fn not_running(base: &str) -> String {
    format!("cannot reach the broker at {base}: start it with `mcp-broker serve` (or pass --port)")
}

/// How the running broker answered a POST.
enum Answer {
    Ok(Value),
    Refused(String),
    /// Nobody listens there.
    NoBroker,
}

async fn ask(http: &reqwest::Client, url: String) -> Answer {
    let Ok(res) = http.post(url).send().await else {
        return Answer::NoBroker;
    };
    let ok = res.status().is_success();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if ok {
        Answer::Ok(body)
    } else {
        Answer::Refused(
            body["error"]
                .as_str()
                .unwrap_or("the broker refused")
                .to_owned(),
        )
    }
}

async fn login_via(http: &reqwest::Client, base: &str, name: &str, no_browser: bool) -> i32 {
    let body = match ask(http, format!("{base}/upstream-login/{name}")).await {
        Answer::Ok(b) => b,
        Answer::Refused(e) => {
            eprintln!("mcp-broker: cannot sign in to {name}: {e}");
            return 1;
        }
        Answer::NoBroker => {
            eprintln!("mcp-broker: {}", not_running(base));
            return 1;
        }
    };
    let Some(url) = body["authorize_url"].as_str() else {
        eprintln!("mcp-broker: the broker gave no sign-in URL");
        return 1;
    };
    println!("Sign in to {name} in your browser:");
    println!("{url}");
    if !no_browser && let Err(e) = crate::browser::open(url) {
        eprintln!("mcp-broker: could not open a browser ({e}); open the URL above");
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Ok(res) = http
            .get(format!("{base}/upstream-login/{name}"))
            .send()
            .await
        else {
            eprintln!("mcp-broker: {}", not_running(base));
            return 1;
        };
        let st: Value = res.json().await.unwrap_or(Value::Null);
        match st["state"].as_str() {
            Some("done") => {
                println!("signed in to {name}; the tokens are in the OS keychain");
                return 0;
            }
            Some("failed") => {
                eprintln!(
                    "mcp-broker: sign-in to {name} failed: {}",
                    st["detail"].as_str().unwrap_or("unknown reason")
                );
                return 1;
            }
            _ => {}
        }
    }
    eprintln!("mcp-broker: sign-in to {name} was not finished within 10 minutes");
    1
}

async fn logout_via(http: &reqwest::Client, base: &str, name: &str) -> i32 {
    let signed_out = match ask(http, format!("{base}/upstream-logout/{name}")).await {
        Answer::Ok(body) => body["signed_out"].as_bool().unwrap_or(false),
        Answer::Refused(e) => {
            eprintln!("mcp-broker: cannot sign out of {name}: {e}");
            return 1;
        }
        Answer::NoBroker => {
            // No broker running: revoke and delete here.
            let oauth = UpstreamOAuth::new(Arc::new(Vault::system()), http.clone());
            match oauth.logout(name).await {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("mcp-broker: {e}");
                    return 1;
                }
            }
        }
    };
    if signed_out {
        println!(
            "signed out of {name}: tokens revoked where offered and deleted from the OS keychain"
        );
    } else {
        println!("{name} had no sign-in");
    }
    0
}
