//! A tool's definition as an upstream serves it in `tools/list` (MCP 2025-11-25
//! "Tools", `Tool`), and its pin: the SHA-256 of the parts that tell a model what the
//! tool does (name, title, description, input and output schema, annotations) in a
//! canonical JSON form (object keys sorted, no whitespace), so the same definition
//! always pins the same however the upstream orders or spaces it.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The fields a pin covers; anything else (`_meta`, `icons`) may change freely.
const PINNED_FIELDS: [&str; 6] = [
    "name",
    "title",
    "description",
    "inputSchema",
    "outputSchema",
    "annotations",
];

/// What the consent screens and the grants window show of a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolDefinition {
    pub name: String,
    /// `title`, else `annotations.title`.
    pub title: Option<String>,
    pub description: Option<String>,
    /// `annotations.readOnlyHint`.
    pub read_only: bool,
    /// `annotations.destructiveHint`, only when stated: the spec's default (true) is not
    /// treated as a claim.
    pub destructive: bool,
    /// `annotations.openWorldHint`, only when stated.
    pub open_world: bool,
    /// The pin of the whole definition.
    pub pin: String,
    /// The pinned fields, canonical JSON: what a diff is made of.
    pub canonical: String,
}

impl ToolDefinition {
    /// `None` for an entry without a string `name` (not a tool).
    pub fn of(tool: &Value) -> Option<ToolDefinition> {
        let name = tool.get("name")?.as_str()?.to_owned();
        let annotations = tool.get("annotations");
        let hint = |k: &str| {
            annotations
                .and_then(|a| a.get(k))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        let canonical = canonical_definition(tool);
        Some(ToolDefinition {
            title: text(tool.get("title"))
                .or_else(|| text(annotations.and_then(|a| a.get("title")))),
            description: text(tool.get("description")),
            read_only: hint("readOnlyHint"),
            destructive: hint("destructiveHint"),
            open_world: hint("openWorldHint"),
            pin: pin_of(&canonical),
            canonical,
            name,
        })
    }
}

/// The pinned fields of a tool, canonical JSON.
pub fn canonical_definition(tool: &Value) -> String {
    let mut out = String::from("{");
    let mut first = true;
    let mut fields: Vec<&str> = PINNED_FIELDS
        .iter()
        .copied()
        .filter(|k| tool.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    fields.sort_unstable();
    for k in fields {
        if !first {
            out.push(',');
        }
        first = false;
        write_canonical(&Value::String(k.to_owned()), &mut out);
        out.push(':');
        write_canonical(&tool[k], &mut out);
    }
    out.push('}');
    out
}

/// Hex SHA-256 of a canonical definition.
pub fn pin_of(canonical: &str) -> String {
    format!("{:x}", Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(&Value::String(k.clone()), out);
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        // Scalars have one serde_json spelling already.
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_pin_ignores_key_order_and_unpinned_fields_but_not_meaning() {
        let a = json!({"name":"rm","description":"Deletes","inputSchema":{"type":"object","properties":{"p":{"type":"string"}}}});
        let b: Value = serde_json::from_str(
            r#"{"inputSchema":{"properties":{"p":{"type":"string"}},"type":"object"},"_meta":{"x":1},"description":"Deletes","name":"rm"}"#,
        )
        .unwrap();
        let pa = ToolDefinition::of(&a).unwrap();
        let pb = ToolDefinition::of(&b).unwrap();
        assert_eq!(pa.pin, pb.pin);
        assert_eq!(
            pa.canonical,
            r#"{"description":"Deletes","inputSchema":{"properties":{"p":{"type":"string"}},"type":"object"},"name":"rm"}"#
        );
        for changed in [
            json!({"name":"rm","description":"Deletes everything","inputSchema":a["inputSchema"]}),
            json!({"name":"rm","description":"Deletes","inputSchema":{"type":"object"}}),
            json!({"name":"rm","description":"Deletes","inputSchema":a["inputSchema"],"annotations":{"readOnlyHint":true}}),
            json!({"name":"rm2","description":"Deletes","inputSchema":a["inputSchema"]}),
        ] {
            assert_ne!(
                ToolDefinition::of(&changed).unwrap().pin,
                pa.pin,
                "{changed}"
            );
        }
    }

    #[test]
    fn hints_count_only_when_stated() {
        let t = ToolDefinition::of(&json!({"name":"x","annotations":{"title":"X tool","destructiveHint":true,"openWorldHint":true}})).unwrap();
        assert!(t.destructive && t.open_world && !t.read_only);
        assert_eq!(t.title.as_deref(), Some("X tool"));
        let plain = ToolDefinition::of(&json!({"name":"y"})).unwrap();
        assert!(!plain.destructive && !plain.read_only && !plain.open_world);
        assert!(ToolDefinition::of(&json!({"title":"no name"})).is_none());
    }
}
