//! One MCP session (protocol 2025-06-18, JSON answers) as a client with a bearer token sees
//! it: initialize, then requests on the session the broker assigned.

use serde_json::{Value, json};

pub struct Session {
    http: reqwest::Client,
    url: String,
    token: String,
    sid: Option<String>,
    next_id: i64,
}

impl Session {
    /// initialize + notifications/initialized; panics if the broker refuses.
    pub async fn open(url: &str, token: &str) -> Session {
        let mut s = Session {
            http: super::http(),
            url: url.to_owned(),
            token: token.to_owned(),
            sid: None,
            next_id: 1,
        };
        let init = s
            .request(
                "initialize",
                json!({"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "test", "version": "1"}}),
            )
            .await;
        assert!(init.get("result").is_some(), "initialize: {init}");
        s.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        s
    }

    async fn post(&mut self, body: Value) -> Value {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(sid) = &self.sid {
            req = req
                .header("mcp-session-id", sid)
                .header("mcp-protocol-version", "2025-06-18");
        }
        let res = req.send().await.expect("POST /mcp");
        if let Some(sid) = res.headers().get("mcp-session-id") {
            self.sid = Some(sid.to_str().unwrap().to_owned());
        }
        let status = res.status();
        let text = res.text().await.unwrap();
        // A JSON body, or one SSE event carrying it.
        let json = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .unwrap_or(text.trim());
        if json.is_empty() {
            return Value::Null;
        }
        serde_json::from_str(json).unwrap_or_else(|_| panic!("{status}: {text}"))
    }

    /// A request's whole answer (`result` or `error`).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    /// The text of a tool call's first content item; panics on an error answer.
    pub async fn tool_text(&mut self, name: &str, args: Value) -> String {
        let r = self
            .request("tools/call", json!({"name": name, "arguments": args}))
            .await;
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("no tool result: {r}"))
            .to_owned()
    }
}
