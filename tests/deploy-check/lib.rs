//! Paths for the deploy/ validation test (`deploy.rs`).

use std::path::{Path, PathBuf};

/// The repository root (where spin.toml and deploy/ live).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}
