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
/// is terminated first. A thread of its own, so no state of the async runtime can stop it.
pub fn exit_with_parent(child: Option<u32>) {
    let parent = std::os::unix::process::parent_id();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if std::os::unix::process::parent_id() != parent {
                if let Some(pid) = child {
                    // SAFETY: kill(2) on our own child's pid.
                    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                }
                // SAFETY: _exit(2) ends the process at once, without running destructors
                // or taking locks another thread may hold.
                unsafe { libc::_exit(0) };
            }
        }
    });
}

/// `berth-runner supervise -- CMD ARGS…`: runs CMD until it exits or our parent does.
pub async fn run(command: &[String]) -> anyhow::Result<()> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..]).kill_on_drop(true);
    die_with_runner(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", command[0]))?;
    exit_with_parent(child.id());
    let status = child.wait().await?;
    anyhow::ensure!(status.success(), "{} exited with {status}", command[0]);
    Ok(())
}
