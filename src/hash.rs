//! Content hashing helpers: blake3 of files (windowed, multi-threaded) and
//! bytes, and canonical JSON (keys sorted at every level, no whitespace),
//! so that a re-ordered but equal document or config hashes the same.

use std::path::Path;

use serde_json::Value;

/// Bytes of a file mapped at once while hashing it.
pub(crate) const HASH_WINDOW: u64 = 64 << 20;

/// blake3 of a local file, multi-threaded, through one memory-mapped window
/// of `HASH_WINDOW` bytes at a time. Mapping the whole file (what
/// `blake3::Hasher::update_mmap_rayon` does) would put all of it in the
/// process's resident set: a source larger than the memory budget must be
/// hashable within it. Small files are read instead (a mapping costs more).
pub fn hash_file(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut h = blake3::Hasher::new();
    if len < (1 << 20) {
        let mut buf = Vec::with_capacity(len as usize);
        std::io::Read::read_to_end(&mut &file, &mut buf)?;
        h.update(&buf);
        return Ok(h.finalize().to_hex().to_string());
    }
    let mut offset = 0;
    while offset < len {
        let n = HASH_WINDOW.min(len - offset);
        // SAFETY: the map is read-only and dropped before the next one; a
        // file truncated while it is hashed can fault, as with any mapped
        // reader (Polars maps sources the same way).
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(offset)
                .len(n as usize)
                .map(&file)?
        };
        // Read ahead: the window is hashed front to back.
        let _ = map.advise(memmap2::Advice::Sequential);
        h.update_rayon(&map);
        offset += n;
    }
    Ok(h.finalize().to_hex().to_string())
}

pub fn hash_bytes(data: &[u8]) -> String {
    if data.len() > 1 << 20 {
        let mut h = blake3::Hasher::new();
        h.update_rayon(data);
        h.finalize().to_hex().to_string()
    } else {
        blake3::hash(data).to_hex().to_string()
    }
}

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
