//! `berth build`: runs each component's `[component.<id>.build] command`, like `spin build`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::manifest;

/// Runs the build commands in manifest order (components sorted by id, as Spin iterates them),
/// streaming their output, and stops at the first failure.
pub fn run(manifest_path: &Path) -> Result<()> {
    let app = manifest::parse_file(manifest_path)?;
    let targets_wasi = app
        .components
        .values()
        .filter_map(|c| c.build.as_ref())
        .any(|b| b.command.contains("wasm32-wasip2"));
    if targets_wasi {
        ensure_wasi_target(&app.dir);
    }
    let mut built = 0;
    for (id, component) in &app.components {
        let Some(build) = &component.build else {
            println!("Component {id} does not have a build command: skipping");
            continue;
        };
        let workdir = match &build.workdir {
            Some(w) => app.dir.join(w),
            None => app.dir.clone(),
        };
        println!("Building component {id} with `{}`", build.command);
        let status = Command::new("sh")
            .arg("-c")
            .arg(&build.command)
            .current_dir(&workdir)
            .envs(&build.environment)
            .status()
            .with_context(|| {
                format!(
                    "cannot run the build command for component {id:?} in {}",
                    workdir.display()
                )
            })?;
        if !status.success() {
            bail!(
                "build command for component {id:?} failed ({status}): `{}`",
                build.command
            );
        }
        built += 1;
    }
    println!("Finished building {built} component(s)");
    Ok(())
}

/// A toolchain that rustup installed before `rust-toolchain.toml` asked for
/// `wasm32-wasip2` lacks that target: add it, as `rustup toolchain install` would.
fn ensure_wasi_target(dir: &Path) {
    let libdir = Command::new("rustc")
        .args(["--print", "target-libdir", "--target", "wasm32-wasip2"])
        .current_dir(dir)
        .output();
    let installed = libdir
        .ok()
        .filter(|o| o.status.success())
        .map(|o| Path::new(String::from_utf8_lossy(&o.stdout).trim()).is_dir())
        .unwrap_or(false);
    if installed {
        return;
    }
    println!("Adding the wasm32-wasip2 target with rustup");
    let added = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .current_dir(dir)
        .status();
    if !added.is_ok_and(|s| s.success()) {
        eprintln!(
            "warning: could not add the wasm32-wasip2 target; run `rustup target add wasm32-wasip2`"
        );
    }
}
