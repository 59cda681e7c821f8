//! `berth bench --quick` end to end on a small catalog, from SQLite and from PostgreSQL: it
//! seeds, copies, serves, drives every scenario without an error on both stores and reports
//! their tables side by side, the targets and the lost-update checks. (The real runs, up to
//! a million images, are `berth bench`; see docs/performance.md.)

use std::process::Command;

use berth_tests::{host_binary, repo_root, skip_on_spin};

#[test]
fn bench_quick_drives_every_scenario_without_errors() {
    if skip_on_spin("berth bench (serves the catalog with berth's host itself)") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(host_binary())
        .current_dir(repo_root())
        .args([
            "bench",
            "--quick",
            "--stores",
            "sqlite,postgres",
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
    // "## 2k images" (SQLite) and "## 2k images, PostgreSQL": every scenario ran, no errors.
    for title in ["2k images", "2k images, PostgreSQL"] {
        let section = section(&report, title);
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
            let row = section
                .lines()
                .find(|l| l.starts_with(&format!("| {scenario} |")))
                .unwrap_or_else(|| panic!("no row for {scenario} in {title}:\n{report}"));
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let requests: u64 = cells[2].parse().unwrap();
            assert!(requests > 0, "{title}: {row}");
            assert_eq!(
                cells[cells.len() - 2],
                "0",
                "errors in {title}: {row}\n{report}"
            );
        }
        assert!(
            section.contains("progress callbacks: 0 lost updates"),
            "{title}:\n{report}"
        );
    }
    let both = section(&report, "2k images: SQLite and PostgreSQL");
    assert!(both.contains("| list |"), "{report}");
    assert!(report.contains("## Targets"), "{report}");
    assert!(report.contains("host start → first 200, cold"), "{report}");
}

/// The text of the report's `## {title}` section.
fn section<'a>(report: &'a str, title: &str) -> &'a str {
    let start = report
        .find(&format!("## {title}\n"))
        .unwrap_or_else(|| panic!("no section '{title}':\n{report}"));
    let body = &report[start + 3 + title.len()..];
    &body[..body.find("\n## ").unwrap_or(body.len())]
}
