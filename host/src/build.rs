//! `berth build`: runs each component's `[component.<id>.build] command`, like `spin build`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::manifest;

/// Runs the build commands in manifest order (components sorted by id, as Spin iterates them),
/// streaming their output, and stops at the first failure.
pub fn run(manifest_path: &Path) -> Result<()> {
    let app = manifest::parse_file(manifest_path)?;
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
