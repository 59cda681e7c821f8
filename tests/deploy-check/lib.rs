//! Paths for the deploy/ validation test (`deploy.rs`).

use std::path::{Path, PathBuf};

/// The repository root (where spin.toml and deploy/ live).
pub fn repo_root() -> PathBuf {
    // Read at run time (cargo sets it for `cargo test`): a binary cargo reuses from another
    // checkout sharing the target dir would otherwise name that checkout.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    Path::new(&manifest_dir)
        .join("../..")
        .canonicalize()
        .unwrap()
}
