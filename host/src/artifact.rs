//! `livesnap component --out DIR`: the embeddable artifacts, exactly the bytes this binary runs.
//!
//! - `livesnap.wasm`: the capture + render component, world `livesnap:snap/snapper`. It imports
//!   nothing at all (no WASI): any component host can run it with an empty linker.
//! - `livesnap-edge.wasm`: the edge proxy, world `wasi:http/proxy`, for `wasmtime serve` and
//!   hosts of the same model.
//! - `wit/livesnap.wit`: the WIT package the first one exports (`docs/contract.md` says what
//!   each item means and what its version promises).

use crate::runtime::{COMPONENT_WASM, EDGE_WASM};
use anyhow::Context as _;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The WIT package, file by file (relative to `wit/`).
pub const WIT_FILES: &[(&str, &str)] = &[("livesnap.wit", include_str!("../../wit/livesnap.wit"))];

/// Every artifact: relative path and bytes.
pub fn files() -> Vec<(String, &'static [u8])> {
    let mut files = vec![
        ("livesnap.wasm".to_owned(), COMPONENT_WASM),
        ("livesnap-edge.wasm".to_owned(), EDGE_WASM),
    ];
    files.extend(
        WIT_FILES
            .iter()
            .map(|(name, text)| (format!("wit/{name}"), text.as_bytes())),
    );
    files
}

/// Write every artifact under `dir`; returns one line per file: `sha256  bytes  path`.
pub fn write(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut lines = Vec::new();
    for (name, bytes) in files() {
        let path = dir.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        lines.push(format!(
            "{}  {:>9}  {}",
            hex::encode(Sha256::digest(bytes)),
            bytes.len(),
            path.display()
        ));
    }
    Ok(lines)
}
