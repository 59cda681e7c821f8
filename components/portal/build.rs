//! Embeds the built portal (`portal/dist`, made by `npm run build`) into the component:
//! writes `$OUT_DIR/assets.rs` with one `Asset` per file: its `.gz` twin when the front-end
//! build made one (the file itself is then left out), the file as it is otherwise.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    // Read at run time, not with env!(): cargo reuses a compiled build script across
    // checkouts that share a target dir, and a baked-in path would name another checkout.
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dist = Path::new(&manifest_dir).join("../../portal/dist");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    println!("cargo:rerun-if-changed={}", dist.display());

    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        collect(&dist, &mut files);
    } else {
        // A component built without the front-end (e.g. `cargo check --workspace`) still
        // compiles, and says how to get the real page.
        println!(
            "cargo:warning=portal/dist is missing: the portal serves a placeholder (run `berth build`)"
        );
        let placeholder = out.join("index.html");
        std::fs::write(
            &placeholder,
            "<!doctype html><title>berth</title><p>The portal is not built: run <code>berth build</code>.</p>",
        )
        .expect("write the placeholder page");
        files.push(placeholder);
        write_assets(&out, &out, &files);
        return;
    }
    files.sort();
    write_assets(&out, &dist, &files);
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        println!("cargo:rerun-if-changed={}", path.display());
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_none_or(|e| e != "gz") {
            files.push(path);
        }
    }
}

fn write_assets(out: &Path, root: &Path, files: &[PathBuf]) {
    let mut code = String::from("pub static ASSETS: &[Asset] = &[\n");
    for file in files {
        let rel = file.strip_prefix(root).expect("under the root");
        let url = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
        let gz = PathBuf::from(format!("{}.gz", file.display()));
        let gzipped = gz.is_file();
        let embedded = if gzipped { &gz } else { file };
        let abs = embedded.canonicalize().expect("an existing file");
        writeln!(
            code,
            "    Asset {{ path: {url:?}, bytes: include_bytes!({abs:?}), gzipped: {gzipped} }},"
        )
        .unwrap();
    }
    code.push_str("];\n");
    std::fs::write(out.join("assets.rs"), code).expect("write assets.rs");
}
