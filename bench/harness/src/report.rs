//! The benchmark's report: one Markdown table per catalog size and store, every figure with
//! its ratio to the hello-world baseline measured in the same run, the stores side by side,
//! then the targets.

use std::fmt::Write;
use std::time::Duration;

use super::load::{Outcome, Plan};
use super::seed::Seeded;
use super::{BenchArgs, HostKind, SCENARIOS, Store};

const MIB: u64 = 1 << 20;

pub struct Row {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub per_second: f64,
}

impl Row {
    pub fn new(name: &str, o: &Outcome) -> Row {
        Row {
            name: name.to_string(),
            requests: o.requests(),
            errors: o.errors,
            first_error: o.first_error.clone(),
            p50_ms: o.percentile_ms(50.0),
            p99_ms: o.percentile_ms(99.0),
            per_second: o.per_second(),
        }
    }
}

pub struct SizeReport {
    pub n: usize,
    pub store: Store,
    pub host: HostKind,
    pub seeded: String,
    pub warm_start: Duration,
    pub first_list: Duration,
    pub idle_rss_kib: u64,
    pub rss_peak_kib: u64,
    pub rss_hwm_kib: u64,
    pub rows: Vec<Row>,
    /// (layers checked, layers whose acknowledged progress was lost)
    pub progress_check: Option<(usize, usize)>,
}

impl SizeReport {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: usize,
        store: Store,
        host: HostKind,
        s: &Seeded,
        filled: String,
        warm_start: Duration,
        first_list: Duration,
        idle_rss_kib: u64,
    ) -> SizeReport {
        SizeReport {
            n,
            store,
            host,
            seeded: format!(
                "{} images, {} scopes, {} platforms, {} imports, {filled}",
                s.images, s.scopes, s.platforms, s.imports,
            ),
            warm_start,
            first_list,
            idle_rss_kib,
            rss_peak_kib: 0,
            rss_hwm_kib: 0,
            rows: Vec::new(),
            progress_check: None,
        }
    }

    fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// "100k images" (SQLite, the default store, on berth), "100k images, PostgreSQL" or
    /// "100k images, real Spin".
    fn title(&self) -> String {
        let mut t = format!("{} images", count_label(self.n));
        if self.store != Store::Sqlite {
            t = format!("{t}, {}", self.store.label());
        }
        if self.host == HostKind::Spin {
            t.push_str(", real Spin");
        }
        t
    }

    /// A scenario's p50 as a ratio to this host's hello p50 in the same run.
    fn p50_ratio(&self, name: &str) -> Option<(f64, f64, f64)> {
        let (r, h) = (self.row(name)?, self.row("hello")?);
        (h.p50_ms > 0.0 && r.p50_ms.is_finite()).then(|| (r.p50_ms, h.p50_ms, r.p50_ms / h.p50_ms))
    }
}

pub struct Report {
    command: String,
    plan: Plan,
    rounds: u32,
    pub wasm_sizes: Vec<(String, u64)>,
    pub cold_start: Option<Duration>,
    pub sizes: Vec<SizeReport>,
}

fn count_label(n: usize) -> String {
    match n {
        n if n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let free = std::process::Command::new("free")
        .arg("-h")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim_end().to_string())
        .unwrap_or_default();
    format!("- CPU: {cpu}\n- nproc: {nproc}\n- free -h:\n\n```\n{free}\n```\n")
}

impl Report {
    pub fn new(
        args: &BenchArgs,
        sizes: &[usize],
        stores: &[Store],
        hosts: &[HostKind],
        plan: Plan,
        rounds: u32,
    ) -> Report {
        let sizes: Vec<String> = sizes.iter().map(|n| count_label(*n)).collect();
        let stores: Vec<&str> = stores
            .iter()
            .map(|s| match s {
                Store::Sqlite => "sqlite",
                Store::Postgres => "postgres",
            })
            .collect();
        Report {
            command: format!(
                "berth bench --sizes {}{}{}{}{} --concurrency {} --rounds {rounds}",
                sizes.join(","),
                if hosts.contains(&HostKind::Spin) {
                    " --host spin"
                } else {
                    ""
                },
                if stores == ["sqlite"] {
                    String::new()
                } else {
                    format!(" --stores {}", stores.join(","))
                },
                if args.quick { " --quick" } else { "" },
                args.scenarios
                    .as_ref()
                    .map(|s| format!(" --scenarios {}", s.join(",")))
                    .unwrap_or_default(),
                plan.concurrency
            ),
            plan,
            rounds,
            wasm_sizes: Vec::new(),
            cold_start: None,
            sizes: Vec::new(),
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let p = &self.plan;
        let _ = writeln!(s, "# berth bench\n");
        let _ = writeln!(
            s,
            "`{}`: {} connections; per scenario and size {:.1} s measured (or {} requests), \
             in {} rounds taken in turn by every size, each after a {:.1} s warm-up; \
             host `berth up` with `BERTH_LOG=warn` (and `spin up` with `--host spin`).\n",
            self.command,
            p.concurrency,
            p.duration.as_secs_f64(),
            p.max_requests,
            self.rounds,
            p.warmup.as_secs_f64(),
        );
        s.push_str(&machine());
        s.push('\n');
        for size in &self.sizes {
            self.render_size(&mut s, size);
        }
        self.render_stores(&mut s);
        self.render_hosts(&mut s);
        self.render_static(&mut s);
        self.render_targets(&mut s);
        s.push_str("\nScenarios:\n\n");
        for (name, what) in SCENARIOS {
            let _ = writeln!(s, "- `{name}`: {what}");
        }
        s
    }

    fn render_size(&self, s: &mut String, size: &SizeReport) {
        let _ = writeln!(s, "## {}\n", size.title());
        let _ = writeln!(s, "Seeded: {}.\n", size.seeded);
        let _ = writeln!(
            s,
            "| scenario | requests | p50 ms | p99 ms | req/s | p50 ÷ hello | p99 ÷ hello | req/s ÷ hello | errors |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let hello = size.row("hello");
        for r in &size.rows {
            let ratio = |a: f64, b: Option<f64>| match b {
                Some(b) if b > 0.0 && a.is_finite() => format!("{:.2}×", a / b),
                _ => "–".into(),
            };
            // No request finished inside the measured window: no percentiles to show.
            let num = |v: f64| {
                if v.is_finite() {
                    format!("{v:.2}")
                } else {
                    "–".into()
                }
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
                r.name,
                r.requests,
                num(r.p50_ms),
                num(r.p99_ms),
                r.per_second,
                ratio(r.p50_ms, hello.map(|h| h.p50_ms)),
                ratio(r.p99_ms, hello.map(|h| h.p99_ms)),
                ratio(r.per_second, hello.map(|h| h.per_second)),
                r.errors
            );
        }
        s.push('\n');
        for r in size.rows.iter().filter(|r| r.errors > 0) {
            let _ = writeln!(
                s,
                "- {}: {} errors, first: `{}`",
                r.name,
                r.errors,
                r.first_error.as_deref().unwrap_or("?")
            );
        }
        let _ = writeln!(
            s,
            "- host start → first 200 (compile cache warm): {}; first list request after start: {}",
            ms(size.warm_start),
            ms(size.first_list)
        );
        let _ = writeln!(
            s,
            "- host RSS: {} idle after start, {} peak sampled under load (VmHWM {})",
            mib(size.idle_rss_kib),
            mib(size.rss_peak_kib),
            mib(size.rss_hwm_kib)
        );
        if let Some((checked, lost)) = size.progress_check {
            let _ = writeln!(
                s,
                "- progress callbacks: {lost} lost updates among {checked} acknowledged layer reports"
            );
        }
        s.push('\n');
    }

    /// Each size served from both stores: the same scenarios side by side.
    fn render_stores(&self, s: &mut String) {
        let pairs: Vec<(&SizeReport, &SizeReport)> = self
            .sizes
            .iter()
            .filter(|x| x.store == Store::Postgres && x.host == HostKind::Berth)
            .filter_map(|pg| {
                let lite = self.sizes.iter().find(|x| {
                    x.store == Store::Sqlite && x.n == pg.n && x.host == HostKind::Berth
                })?;
                Some((lite, pg))
            })
            .collect();
        for (lite, pg) in pairs {
            let _ = writeln!(
                s,
                "## {} images: SQLite and PostgreSQL\n",
                count_label(lite.n)
            );
            let _ = writeln!(
                s,
                "| scenario | SQLite p50 ms | PostgreSQL p50 ms | SQLite p99 ms | PostgreSQL p99 ms | SQLite req/s | PostgreSQL req/s | PostgreSQL p50 ÷ its hello |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
            let hello = pg.row("hello").map(|h| h.p50_ms);
            for a in &lite.rows {
                let Some(b) = pg.row(&a.name) else { continue };
                let ratio = match hello {
                    Some(h) if h > 0.0 && b.p50_ms.is_finite() => format!("{:.2}×", b.p50_ms / h),
                    _ => "–".into(),
                };
                let _ = writeln!(
                    s,
                    "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {ratio} |",
                    a.name, a.p50_ms, b.p50_ms, a.p99_ms, b.p99_ms, a.per_second, b.per_second
                );
            }
            s.push('\n');
        }
    }

    /// Each catalog served by berth and by real Spin: every figure as a ratio to its own
    /// host's hello-world, side by side.
    fn render_hosts(&self, s: &mut String) {
        for spin in self.sizes.iter().filter(|x| x.host == HostKind::Spin) {
            let Some(berth) = self
                .sizes
                .iter()
                .find(|x| x.host == HostKind::Berth && x.n == spin.n && x.store == spin.store)
            else {
                continue;
            };
            let store = match spin.store {
                Store::Sqlite => String::new(),
                other => format!(", {}", other.label()),
            };
            let _ = writeln!(
                s,
                "## {} images{store}: berth and real Spin\n",
                count_label(spin.n)
            );
            let _ = writeln!(
                s,
                "| scenario | berth p50 ms | Spin p50 ms | berth req/s | Spin req/s | berth p50 ÷ its hello | Spin p50 ÷ its hello |"
            );
            let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
            for b in &berth.rows {
                let Some(x) = spin.row(&b.name) else { continue };
                let ratio = |size: &SizeReport| {
                    size.p50_ratio(&b.name)
                        .map_or("–".into(), |(_, _, r)| format!("{r:.2}×"))
                };
                let _ = writeln!(
                    s,
                    "| {} | {:.2} | {:.2} | {:.0} | {:.0} | {} | {} |",
                    b.name,
                    b.p50_ms,
                    x.p50_ms,
                    b.per_second,
                    x.per_second,
                    ratio(berth),
                    ratio(spin)
                );
            }
            s.push('\n');
        }
    }

    fn render_static(&self, s: &mut String) {
        let _ = writeln!(s, "## Components and start-up\n");
        let _ = writeln!(s, "| component | .wasm |");
        let _ = writeln!(s, "|---|---:|");
        for (id, bytes) in &self.wasm_sizes {
            let _ = writeln!(s, "| {id} | {:.0} KiB |", *bytes as f64 / 1024.0);
        }
        s.push('\n');
        if let Some(cold) = self.cold_start {
            let _ = writeln!(
                s,
                "- host start → first 200, cold (empty compile cache): {}",
                ms(cold)
            );
        }
        for size in &self.sizes {
            let _ = writeln!(
                s,
                "- host start → first 200, compile cache warm ({}): {}",
                size.title(),
                ms(size.warm_start)
            );
        }
        s.push('\n');
    }

    fn render_targets(&self, s: &mut String) {
        let _ = writeln!(s, "## Targets\n");
        let _ = writeln!(s, "| target | measured | met |");
        let _ = writeln!(s, "|---|---|---|");
        let mut line = |target: &str, measured: String, met: Option<bool>| {
            let met = match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(s, "| {target} | {measured} | {met} |");
        };
        // The targets are SQLite's, the default store; PostgreSQL is compared above.
        let sqlite: Vec<&SizeReport> = self
            .sizes
            .iter()
            .filter(|x| x.store == Store::Sqlite && x.host == HostKind::Berth)
            .collect();
        let spin: Vec<&SizeReport> = self
            .sizes
            .iter()
            .filter(|x| x.store == Store::Sqlite && x.host == HostKind::Spin)
            .collect();
        // Ratios to the same host's hello at 100k (or the largest size measured below it).
        let ratio_targets: &[(&[&SizeReport], &str, &str, f64)] = &[
            (&sqlite, "berth", "search", 8.0),
            (&sqlite, "berth", "grouped", 4.0),
            (&spin, "Spin", "list", 3.0),
            (&spin, "Spin", "detail", 2.0),
        ];
        for (sizes, host, scenario, max) in ratio_targets {
            let Some(size) = sizes.iter().find(|x| x.n == 100_000) else {
                continue;
            };
            if let Some((a, h, r)) = size.p50_ratio(scenario) {
                line(
                    &format!("{scenario} at 100k on {host}: p50 ≤ {max}× its hello p50"),
                    format!("{a:.2} ms vs {h:.2} ms = {r:.2}×"),
                    Some(r <= *max),
                );
            }
        }
        if let (Some(a), Some(b)) = (spin.first(), spin.last())
            && spin.len() > 1
            && let (Some((la, _, _)), Some((lb, _, _))) = (a.p50_ratio("list"), b.p50_ratio("list"))
        {
            let r = lb / la;
            line(
                &format!(
                    "growth on Spin: list p50 at {} ≤ 1.3× at {}",
                    count_label(b.n),
                    count_label(a.n)
                ),
                format!("{lb:.2} ms vs {la:.2} ms = {r:.2}×"),
                (a.n == 10_000 && b.n == 1_000_000).then_some(r <= 1.3),
            );
        }
        let at = |n: usize| sqlite.iter().copied().find(|x| x.n == n);
        let list = |size: &SizeReport| size.row("list").map(|r| r.p50_ms);
        match at(100_000).and_then(|x| Some((x.row("list")?, x.row("hello")?))) {
            Some((l, h)) => {
                let r = l.p50_ms / h.p50_ms;
                line(
                    "list at 100k: p50 ≤ 2× hello p50",
                    format!("{:.2} ms vs {:.2} ms = {r:.2}×", l.p50_ms, h.p50_ms),
                    Some(r <= 2.0),
                );
                let r = l.p99_ms / l.p50_ms;
                line(
                    "list at 100k: p99 ≤ 3× its p50",
                    format!("{:.2} ms vs {:.2} ms = {r:.2}×", l.p99_ms, l.p50_ms),
                    Some(r <= 3.0),
                );
            }
            None => line("list at 100k", "not measured in this run".into(), None),
        }
        let (small, large) = (sqlite.first().copied(), sqlite.last().copied());
        match (small.and_then(list), large.and_then(list)) {
            (Some(a), Some(b)) if sqlite.len() > 1 => {
                let (ns, nl) = (small.unwrap().n, large.unwrap().n);
                let r = b / a;
                line(
                    &format!(
                        "growth: list p50 at {} ≤ 1.3× at {}",
                        count_label(nl),
                        count_label(ns)
                    ),
                    format!("{b:.2} ms vs {a:.2} ms = {r:.2}×"),
                    (ns == 10_000 && nl == 1_000_000).then_some(r <= 1.3),
                );
            }
            _ => line("growth 10k → 1M", "needs two sizes".into(), None),
        }
        let largest = self.wasm_sizes.iter().max_by_key(|(_, b)| *b);
        if let Some((id, bytes)) = largest {
            line(
                "each component .wasm ≤ 1 MiB",
                format!("largest: {id} {:.0} KiB", *bytes as f64 / 1024.0),
                Some(*bytes <= MIB),
            );
        }
        if let Some(worst) = self.sizes.iter().map(|x| x.warm_start).max() {
            line(
                "host start → first 200 ≤ 1 s (cache warm)",
                format!("worst {}", ms(worst)),
                Some(worst <= Duration::from_secs(1)),
            );
        }
        for size in &self.sizes {
            if let (Some(r), Some((checked, lost))) = (size.row("progress"), size.progress_check) {
                line(
                    &format!(
                        "≥ 1,000 progress callbacks/s, no lost update ({})",
                        size.title()
                    ),
                    format!(
                        "{:.0}/s, {} errors, {lost} lost of {checked}",
                        r.per_second, r.errors
                    ),
                    Some(r.per_second >= 1000.0 && lost == 0 && r.errors == 0),
                );
            }
        }
    }
}
