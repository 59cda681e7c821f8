//! Processes that must not outlive whoever started them: `berth up` starts the runner and
//! the demo registry, and a test (or a user) may end `berth up` with SIGKILL.

use std::time::Duration;

use tokio::process::Command;

/// Makes `cmd`'s process get SIGTERM when the runner dies (Linux `PR_SET_PDEATHSIG`).
pub fn die_with_runner(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; the closure touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

/// Exits the runner once its parent is gone (it is then re-parented); `child`, if given,
/// is terminated first.
pub async fn exit_with_parent(child: Option<u32>) {
    let parent = std::os::unix::process::parent_id();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if std::os::unix::process::parent_id() != parent {
            if let Some(pid) = child {
                // SAFETY: kill(2) on our own child's pid.
                unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            }
            tracing::info!("the process that started berth-runner is gone: exiting");
            std::process::exit(0);
        }
    }
}

/// `berth-runner supervise -- CMD ARGS…`: runs CMD until it exits or our parent does.
pub async fn run(command: &[String]) -> anyhow::Result<()> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).kill_on_drop(true);
    die_with_runner(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", command[0]))?;
    tokio::spawn(exit_with_parent(child.id()));
    let status = child.wait().await?;
    anyhow::ensure!(status.success(), "{} exited with {status}", command[0]);
    Ok(())
}
