//! `berth bench --quick` end to end on a small catalog: it seeds, serves, drives every
//! scenario without an error and reports its table, targets and the lost-update check.
//! (The real runs, up to a million images, are `berth bench`; see docs/performance.md.)

use std::process::Command;

use berth_tests::{host_binary, repo_root};

#[test]
fn bench_quick_drives_every_scenario_without_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(host_binary())
        .current_dir(repo_root())
        .args([
            "bench",
            "--quick",
            "--sizes",
            "2k",
            "--duration",
            "0.5",
            "--burst",
            "200",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .expect("run berth bench");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "berth bench failed:\n{}\n{report}",
        String::from_utf8_lossy(&out.stderr)
    );
    for scenario in [
        "hello",
        "list",
        "list-3-filters",
        "search",
        "grouped",
        "detail",
        "importing",
        "webhooks",
        "progress",
    ] {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {scenario} |")))
            .unwrap_or_else(|| panic!("no row for {scenario}:\n{report}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let requests: u64 = cells[2].parse().unwrap();
        assert!(requests > 0, "{row}");
        assert_eq!(cells[cells.len() - 2], "0", "errors in {row}\n{report}");
    }
    assert!(report.contains("## Targets"), "{report}");
    assert!(
        report.contains("progress callbacks: 0 lost updates"),
        "{report}"
    );
    assert!(report.contains("host start → first 200, cold"), "{report}");
}
