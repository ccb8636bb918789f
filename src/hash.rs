//! Content hashing helpers: canonical JSON (keys sorted at every level, no
//! whitespace), so that a re-ordered but equal document or config hashes
//! the same.

use serde_json::Value;

/// Canonical JSON: keys sorted at every level, no whitespace. Used for
/// hashing, so a re-ordered but equal config hashes the same.
pub fn canonical_json(v: &Value) -> String {
    // serde_json's Map may preserve insertion order (a feature some
    // dependency can switch on), so sort explicitly rather than trust it.
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                write_canonical(&m[*k], out);
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
        other => out.push_str(&other.to_string()),
    }
}
