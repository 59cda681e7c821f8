//! Small real base images for builds that must work offline (`berth up --runner buildah`
//! and the tests): one of Debian's static busybox, and one with the machine's own Python
//! and pip on top of it (for `packages` builds, whose generated Dockerfile runs `pip install`
//! in a shell).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::BuildahConfig;
use crate::buildah::{Stop, Watch, bud_args, build_storage, remove_build_storage, step};
use crate::log_tail::LogTail;

/// Directories of the standard library an image does not need (tests, caches, GUIs); and
/// `config-*`, the static libpython for embedding.
const SKIPPED_DIRS: &[&str] = &[
    "__pycache__",
    "test",
    "tests",
    "idle_test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "ensurepip",
    "lib2to3",
    "site-packages",
    "dist-packages",
];

/// `berth-runner busybox-image`.
pub async fn busybox_image(b: &BuildahConfig, busybox: &Path, target: &str) -> Result<()> {
    build_and_push(b, "busybox", target, |context| {
        std::fs::copy(busybox, context.join("busybox"))
            .with_context(|| format!("cannot copy {}", busybox.display()))?;
        Ok("FROM scratch\n\
             COPY busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"mkdir\", \"-p\", \"/sbin\", \"/usr/bin\", \"/usr/sbin\", \"/tmp\", \"/root\", \"/etc\"]\n\
             RUN [\"/bin/busybox\", \"--install\", \"-s\"]\n\
             ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin\n\
             CMD [\"/bin/sh\"]\n"
            .to_owned())
    })
    .await
}

/// `berth-runner python-image`: `from` (the busybox base, for its shell) plus the machine's
/// Python interpreter, the shared libraries it and its extension modules load (found with
/// ldd), its standard library and pip (Debian's python3-pip), and a `pip` command.
pub async fn python_image(
    b: &BuildahConfig,
    python: &Path,
    from: &str,
    target: &str,
) -> Result<()> {
    let python = std::fs::canonicalize(python)
        .with_context(|| format!("no Python interpreter at {}", python.display()))?;
    let probe = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys, sysconfig, os, pip; print(sysconfig.get_paths()['stdlib']); \
             print(sysconfig.get_config_var('DESTSHARED')); print(os.path.dirname(pip.__file__)); \
             print('%d.%d' % sys.version_info[:2])",
        ])
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !probe.status.success() {
        bail!(
            "{} cannot import pip (apt-get install python3-pip): {}",
            python.display(),
            String::from_utf8_lossy(&probe.stderr)
        );
    }
    let text = String::from_utf8_lossy(&probe.stdout).into_owned();
    let [stdlib, dynload, pip, version] = text.lines().collect::<Vec<_>>()[..] else {
        bail!("unexpected answer from {}: {text}", python.display());
    };
    let (stdlib, dynload, pip) = (
        PathBuf::from(stdlib),
        PathBuf::from(dynload),
        PathBuf::from(pip),
    );
    build_and_push(b, "python", target, |context| {
        let root = context.join("rootfs");
        let put = |from: &Path, to: &Path| -> Result<()> {
            let dest = root.join(to.strip_prefix("/").unwrap_or(to));
            std::fs::create_dir_all(dest.parent().expect("a file has a parent"))?;
            std::fs::copy(from, &dest)
                .with_context(|| format!("cannot copy {}", from.display()))?;
            Ok(())
        };
        let exe = PathBuf::from(format!("/usr/bin/python{version}"));
        put(&python, &exe)?;
        copy_tree(&stdlib, &put)?;
        copy_tree(&pip, &put)?;
        let mut binaries = vec![python.clone()];
        binaries.extend(
            walk(&dynload)?
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "so")),
        );
        for lib in shared_libraries(&binaries)? {
            put(&lib, &lib)?;
        }
        let bin = root.join("usr/bin");
        std::os::unix::fs::symlink(format!("python{version}"), bin.join("python3"))?;
        std::os::unix::fs::symlink("python3", bin.join("python"))?;
        std::fs::write(
            bin.join("pip"),
            format!(
                "#!/usr/bin/python{version}\nimport sys\nfrom pip._internal.cli.main import main\nsys.exit(main())\n"
            ),
        )?;
        std::fs::set_permissions(
            bin.join("pip"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        std::os::unix::fs::symlink("pip", bin.join("pip3"))?;
        Ok(format!(
            "FROM {from}\nCOPY rootfs/ /\nENV PYTHONDONTWRITEBYTECODE=1\nCMD [\"python3\"]\n"
        ))
    })
    .await
}

/// Copies the files under `dir` to the same paths under the image root, skipping
/// [`SKIPPED_DIRS`] and Debian's EXTERNALLY-MANAGED marker (pip may install in the image).
fn copy_tree(dir: &Path, put: &dyn Fn(&Path, &Path) -> Result<()>) -> Result<()> {
    for file in walk(dir)? {
        if file.file_name().is_some_and(|n| n == "EXTERNALLY-MANAGED") {
            continue;
        }
        put(&file, &file)?;
    }
    Ok(())
}

/// Regular files under `dir`, not descending into [`SKIPPED_DIRS`].
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in
            std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
        {
            let entry = entry?;
            let kind = entry.file_type()?;
            let name = entry.file_name();
            if kind.is_dir() {
                let config = name.to_str().is_some_and(|n| n.starts_with("config-"));
                if !config && !SKIPPED_DIRS.iter().any(|s| name == *s) {
                    stack.push(entry.path());
                }
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// The shared libraries (and the dynamic loader) `binaries` load, as ldd reports them.
fn shared_libraries(binaries: &[PathBuf]) -> Result<BTreeSet<PathBuf>> {
    let out = std::process::Command::new("ldd")
        .args(binaries)
        .output()
        .context("cannot run ldd")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        // With several files, ldd heads each one's list with `<file>:` (not indented).
        .filter(|line| line.starts_with(char::is_whitespace))
        .filter_map(|line| {
            // `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x…)` or `/lib64/ld-linux-x86-64.so.2 (0x…)`
            let path = match line.split_once("=>") {
                Some((_, after)) => after.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}

/// Writes a context (`context` returns the Dockerfile), builds it with buildah in storage
/// of its own and pushes it to `target`.
async fn build_and_push(
    b: &BuildahConfig,
    what: &str,
    target: &str,
    context: impl FnOnce(&Path) -> Result<String>,
) -> Result<()> {
    let dir = b
        .work_dir
        .join(format!("{what}-image-{}", std::process::id()));
    let result = async {
        let context_dir = dir.join("context");
        std::fs::create_dir_all(&context_dir)?;
        let dockerfile = context(&context_dir)?;
        std::fs::write(context_dir.join("Dockerfile"), dockerfile)?;
        let log = Mutex::new(LogTail::new(16 * 1024, Vec::new()));
        let (_keep, cancel) = watch::channel(None);
        let mut w = Watch {
            log: &log,
            cancel,
            deadline: Instant::now() + Duration::from_secs(600),
            timeout_seconds: 600,
            quota: None,
        };
        let image = format!("localhost/berth-{what}");
        let storage = build_storage(&dir);
        let fail = |s: Stop| {
            anyhow::anyhow!(
                "{}\n{}",
                match s {
                    Stop::Cancelled(m) | Stop::Failed(m) => m,
                },
                log.lock().expect("log lock").text()
            )
        };
        let mut args = storage.clone();
        args.extend(bud_args(b, &context_dir.join("Dockerfile"), &image));
        args.push(context_dir.display().to_string());
        step(b, &args, &mut w, "the build").await.map_err(fail)?;
        let mut push = storage.clone();
        push.extend([
            "push".into(),
            format!("--tls-verify={}", b.tls_verify),
            image,
            format!("docker://{target}"),
        ]);
        step(b, &push, &mut w, "the push").await.map_err(fail)?;
        anyhow::Ok(())
    }
    .await;
    remove_build_storage(b, &dir).await;
    if result.is_ok() {
        println!("pushed {target}");
    }
    result
}
