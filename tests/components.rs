//! The built components import only what the host implements: the Spin interfaces whose
//! WIT is in `wit/`, and WASI 0.2 (provided by wasmtime-wasi and wasmtime-wasi-http). So
//! the same `.wasm` files need nothing host-specific and run on real Spin too.

use std::collections::BTreeSet;
use std::path::PathBuf;

use berth_tests::repo_root;

/// `package:name/interface@version` of every interface the WIT files in `wit/` declare.
fn wit_interfaces() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in std::fs::read_dir(repo_root().join("wit")).unwrap() {
        let dir = dir.unwrap().path();
        let files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect();
        let text: String = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let package = text
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix("package ")
                    .map(|p| p.trim_end_matches(';').trim().to_owned())
            })
            .unwrap_or_else(|| panic!("{} declares no package", dir.display()));
        let (name, version) = package.split_once('@').unwrap();
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("interface ") {
                let interface = rest.trim_end_matches('{').trim();
                out.insert(format!("{name}/{interface}@{version}"));
            }
        }
    }
    out
}

/// The instance imports of a component, e.g. `fermyon:spin/sqlite@2.0.0`.
fn imports(wasm: &[u8]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        match payload.unwrap() {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) if depth > 0 => depth -= 1,
            wasmparser::Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    out.insert(import.unwrap().name.0.to_owned());
                }
            }
            _ => {}
        }
    }
    out
}

fn wasi_02(name: &str) -> bool {
    name.starts_with("wasi:")
        && name
            .split_once('@')
            .is_some_and(|(_, v)| v.starts_with("0.2."))
}

#[test]
fn components_import_only_interfaces_the_host_implements() {
    let declared = wit_interfaces();
    assert!(
        declared.contains("fermyon:spin/sqlite@2.0.0"),
        "{declared:?}"
    );
    let dir = repo_root().join("target/wasm32-wasip2/component");
    for component in ["catalog", "admin", "importer", "progress"] {
        let path = dir.join(format!("{component}.wasm"));
        let wasm = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `berth build`)", path.display()));
        let imports = imports(&wasm);
        assert!(
            imports.contains("fermyon:spin/sqlite@2.0.0"),
            "{component}: {imports:?}"
        );
        for name in &imports {
            assert!(
                declared.contains(name) || wasi_02(name),
                "{component} imports {name}, which is neither in wit/ nor WASI 0.2"
            );
        }
        let size = wasm.len();
        assert!(
            size <= 1280 * 1024,
            "{component}.wasm is {size} bytes, over 1.25 MiB"
        );
    }
    // The portal carries the web app's files (about 1 MiB) and needs no database.
    let portal = std::fs::read(dir.join("portal.wasm")).expect("portal.wasm (run `berth build`)");
    for name in &imports(&portal) {
        assert!(
            declared.contains(name) || wasi_02(name),
            "portal imports {name}, which is neither in wit/ nor WASI 0.2"
        );
    }
    assert!(
        portal.len() <= 4 * 1024 * 1024,
        "portal.wasm is {} bytes",
        portal.len()
    );
}
