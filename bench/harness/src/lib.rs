//! `berth bench`: seeds catalogs of N synthetic images straight into SQLite (and, with
//! `--stores postgres`, copies them into a throwaway PostgreSQL), serves each with `berth up`
//! (and, with `--host spin`, also with real Spin's `spin up` on the same files), each with a
//! hello-world component as its baseline (same host, same settings), and drives every hot
//! route with concurrent HTTP load over loopback, in one run. See docs/performance.md.

mod faults;
mod load;
mod pg;
mod process;
mod report;
mod scenarios;
mod seed;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use berth_domain::auth::{Claims, Role, issue_token};

use load::{Plan, Scenario};
use process::{Host, HostConfig};
use report::{Report, Row, SizeReport};
use scenarios::{Progress, scenario};

const JWT_SECRET: &str = "berth-bench-jwt-secret";
const WEBHOOK_SECRET: &str = "berth-bench-webhook-secret";
const WORKER_TOKEN: &str = "berth-bench-worker-token";

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Catalog sizes, e.g. `10k,100k,1m` (default: all three; `--quick`: 10k).
    #[arg(long, value_delimiter = ',', value_parser = parse_count)]
    sizes: Option<Vec<usize>>,
    /// Stores to serve each size from: `sqlite` (default), `postgres` (a throwaway cluster
    /// holding a copy of the SQLite catalog; needs PostgreSQL's `initdb` and `pg_ctl`).
    #[arg(long, value_delimiter = ',', value_enum)]
    stores: Option<Vec<Store>>,
    /// Hosts that serve each catalog: `berth` (always: the reference) and `spin` (real Spin's
    /// `spin up` on the same manifest and database files, read scenarios only).
    #[arg(long = "host", value_delimiter = ',', value_enum)]
    hosts: Option<Vec<HostKind>>,
    /// The `spin` executable for `--host spin`.
    #[arg(long, default_value = "spin")]
    spin: PathBuf,
    /// Smoke test: 10k images, about two seconds per scenario.
    #[arg(long)]
    quick: bool,
    /// Measured time per scenario (default 8s, `--quick` 2s), after a warm-up.
    #[arg(long, value_parser = parse_seconds)]
    duration: Option<Duration>,
    /// Cap on measured requests per scenario.
    #[arg(long, default_value_t = 200_000)]
    max_requests: u64,
    /// Webhooks in the ingestion burst (default 5000, `--quick` 1000).
    #[arg(long)]
    burst: Option<u64>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Rounds: each scenario's time is split into this many turns, taken in turn by every
    /// size, so that the shared machine's noise falls on all sizes alike (default 3,
    /// `--quick` 1).
    #[arg(long)]
    rounds: Option<u32>,
    /// Run only these scenarios (comma-separated; `hello` always runs).
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<String>>,
    /// Working directory: one state dir per size, the compile cache, the manifest.
    #[arg(long, default_value = "target/bench")]
    dir: PathBuf,
    /// Reuse a state dir seeded by an earlier run with the same size (migrated first).
    #[arg(long)]
    reuse: bool,
    /// Also write the report (Markdown) to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// The application manifest.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    pub from: PathBuf,
    /// Instead of the catalog scenarios: imports under load and faults (webhooks lost,
    /// duplicated and reordered; the host killed mid-import), see docs/security.md.
    #[arg(long)]
    faults: bool,
    #[command(flatten)]
    fault_args: faults::FaultArgs,
}

/// Where a catalog is served from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Store {
    Sqlite,
    Postgres,
}

impl Store {
    pub fn label(self) -> &'static str {
        match self {
            Store::Sqlite => "SQLite",
            Store::Postgres => "PostgreSQL",
        }
    }
}

/// What serves a catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum HostKind {
    Berth,
    Spin,
}

impl HostKind {
    pub fn label(self) -> &'static str {
        match self {
            HostKind::Berth => "berth",
            HostKind::Spin => "Spin",
        }
    }

    /// The executable's name (`berth up`, `spin up`).
    pub fn command(self) -> &'static str {
        match self {
            HostKind::Berth => "berth",
            HostKind::Spin => "spin",
        }
    }

    /// Whether this host runs `scenario`. Spin serves the same file as berth at the same
    /// time: only reads, so that neither host's writes change what the other measures.
    fn runs(self, scenario: &str) -> bool {
        self == HostKind::Berth || !matches!(scenario, "webhooks" | "progress")
    }
}

fn parse_count(s: &str) -> Result<usize, String> {
    let s = s.trim().to_ascii_lowercase();
    let (digits, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1_000),
        Some('m') => (&s[..s.len() - 1], 1_000_000),
        _ => (s.as_str(), 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n * mult)
        .ok_or_else(|| format!("'{s}' is not a size such as 10k, 100k or 1m"))
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.trim_end_matches('s')
        .parse::<f64>()
        .ok()
        .filter(|v| *v > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("'{s}' is not a duration in seconds such as 2s or 8"))
}

pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "hello",
        "GET /bench/hello: hello-world component (baseline)",
    ),
    (
        "list",
        "GET /api/v1/images?page_size=20&orderBy=created_at&order=desc&page=1..5 (user)",
    ),
    (
        "list-3-filters",
        "…?framework=F&chip_type=GPU&applicable_scope=训练&page_size=20",
    ),
    ("search", "…?name=TERM&page_size=20 (fuzzy, 8 terms)"),
    ("grouped", "…?flat=false&page_size=20&page=1..3"),
    ("detail", "GET /api/v1/images/{id}"),
    (
        "importing",
        "GET /api/v1/images/{id}/importing-details (finished imports)",
    ),
    (
        "webhooks",
        "POST /api/v1/hooks/harbor: REPLICATION burst (no Harbor call)",
    ),
    (
        "progress",
        "PUT /api/v1/images:import/{name}/progress: worker callbacks",
    ),
];

/// Runs the benchmark on the app of `manifest`: its canonical path, whose components the
/// host has checked are built.
pub fn run(args: BenchArgs, manifest: &Path) -> Result<()> {
    let app_dir = manifest.parent().unwrap_or(Path::new("."));
    let hello = hello_wasm(app_dir)?;
    std::fs::create_dir_all(&args.dir)?;
    let dir = std::fs::canonicalize(&args.dir)?;
    if args.faults {
        return faults::run(&args.fault_args, &manifest, &hello, &dir);
    }

    let sizes = args.sizes.clone().unwrap_or_else(|| {
        if args.quick {
            vec![10_000]
        } else {
            vec![10_000, 100_000, 1_000_000]
        }
    });
    let mut stores = args.stores.clone().unwrap_or_else(|| vec![Store::Sqlite]);
    stores.sort();
    stores.dedup();
    if stores.contains(&Store::Postgres) {
        berth_test_support::postgres::available().map_err(anyhow::Error::msg)?;
    }
    let mut hosts = args.hosts.clone().unwrap_or_default();
    hosts.push(HostKind::Berth);
    hosts.sort();
    hosts.dedup();
    if hosts.contains(&HostKind::Spin) {
        let ok = std::process::Command::new(&args.spin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            bail!(
                "--host spin needs Spin's `spin` ({} did not run); install it or pass --spin PATH",
                args.spin.display()
            );
        }
    }
    let selected = |name: &str| {
        name == "hello"
            || args
                .scenarios
                .as_ref()
                .is_none_or(|s| s.iter().any(|x| x == name))
    };
    if let Some(unknown) = args
        .scenarios
        .iter()
        .flatten()
        .find(|s| !SCENARIOS.iter().any(|(n, _)| n == s))
    {
        bail!(
            "unknown scenario {unknown:?}; scenarios: {}",
            SCENARIOS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let duration = args.duration.unwrap_or(if args.quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(8)
    });
    let warmup = if args.quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(1)
    };
    let plan = Plan {
        concurrency: args.concurrency,
        warmup,
        duration,
        max_requests: args.max_requests,
    };
    let burst = args.burst.unwrap_or(if args.quick { 1_000 } else { 5_000 });
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });

    // One async worker for the load generator (and the Harbor simulator): the host gets the rest.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut report = Report::new(&args, &sizes, &stores, &hosts, plan, rounds);
    rt.block_on(async {
        // Harbor: an in-process simulator, so no request can leave the machine. The
        // scenarios' events are answered from the database alone and never reach it.
        let sim =
            harbor_sim::Simulator::start("127.0.0.1:0".parse()?, harbor_sim::SimOptions::default())
                .await?;
        let sim_opts = sim.options().clone();
        let variables: Vec<(String, String)> = vec![
            ("jwt_secret".into(), JWT_SECRET.into()),
            ("harbor_url".into(), sim.url()),
            ("runner_url".into(), sim.url()),
            ("harbor_username".into(), sim_opts.username.clone()),
            ("harbor_password".into(), sim_opts.password.clone()),
            ("harbor_webhook_secret".into(), WEBHOOK_SECRET.into()),
            ("worker_token".into(), WORKER_TOKEN.into()),
            ("runner_secret".into(), sim_opts.runner_secret.clone()),
            ("runner_token".into(), "bench-runner-token".into()),
            (
                "registry_secret_key".into(),
                "bench-registry-secret-key".into(),
            ),
        ];
        let bench_manifest = dir.join("bench-spin.toml");
        let sources = process::write_manifest(&manifest, &hello, &bench_manifest)?;
        for (id, path) in &sources {
            let bytes = std::fs::metadata(path)
                .with_context(|| format!("{}", path.display()))?
                .len();
            report.wasm_sizes.push((id.clone(), bytes));
        }
        let cache = dir.join("compile-cache");

        // Every size is seeded and served (from each store) first; then the scenarios run
        // in rounds across all of them (each host idles while another is measured).
        let mut running = Vec::new();
        for &n in &sizes {
            let state = dir.join(format!("n{n}"));
            let seeded = if args.reuse && state.join("sqlite_db.db").exists() {
                eprintln!("bench: reusing {} ({n} images)", state.display());
                seed::reuse(&state)?
            } else {
                eprintln!("bench: seeding {n} images into {}", state.display());
                seed::seed(&state, n)?
            };
            eprintln!(
                "bench: seeded {} images, {} scopes, {} platforms, {} imports in {:.1?}",
                seeded.images, seeded.scopes, seeded.platforms, seeded.imports, seeded.elapsed
            );
            for &store in &stores {
                let (state, variables, pg_db, filled) = match store {
                    Store::Sqlite => (
                        state.clone(),
                        variables.clone(),
                        None,
                        format!("seeded in {:.1} s", seeded.elapsed.as_secs_f64()),
                    ),
                    Store::Postgres => {
                        eprintln!("bench: copying the {n}-image catalog into PostgreSQL");
                        let sqlite = state.join("sqlite_db.db");
                        let (db, took) =
                            tokio::task::spawn_blocking(move || pg::copy_catalog(&sqlite))
                                .await??;
                        let pg_state = dir.join(format!("n{n}-postgres"));
                        std::fs::create_dir_all(&pg_state)?;
                        let mut vars = variables.clone();
                        vars.extend(db.variables());
                        let filled = format!(
                            "copied from SQLite into PostgreSQL in {:.1} s",
                            took.as_secs_f64()
                        );
                        (pg_state, vars, Some(db), filled)
                    }
                };
                for &kind in &hosts {
                    let cfg = HostConfig {
                        manifest: &bench_manifest,
                        state_dir: &state,
                        compile_cache: &cache,
                        variables: &variables,
                        listen: "127.0.0.1:0".parse()?,
                        kind,
                        spin: &args.spin,
                    };
                    if running.is_empty() {
                        // Cold: nothing compiled yet.
                        let _ = std::fs::remove_dir_all(&cache);
                        let cold = Host::start(&cfg).await?;
                        report.cold_start = Some(cold.first_response);
                        drop(cold);
                    }
                    let mut host = Host::start(&cfg).await?;
                    let warm_start = host.first_response;
                    let idle_rss = host.current_rss_kib();
                    host.sample_rss();
                    let token: Arc<str> = Arc::from(format!(
                        "Bearer {}",
                        issue_token(
                            JWT_SECRET,
                            &Claims {
                                sub: seeded.bench_user.clone(),
                                role: Role::User,
                                exp: now_unix() + 86_400,
                            },
                        )
                    ));
                    // The first catalog request after start-up (connection, schema, cold caches).
                    let t = Instant::now();
                    let (status, _) =
                        load::get_once(host.addr, "/api/v1/images?page_size=20", Some(&token))
                            .await?;
                    let first_list = t.elapsed();
                    if status != 200 {
                        bail!(
                            "GET /api/v1/images answered {status} on {}; see its log in {}",
                            kind.label(),
                            state.display()
                        );
                    }
                    let progress = Arc::new(Progress::new(&seeded.progress_targets));
                    let scenarios: Vec<Measured> = SCENARIOS
                        .iter()
                        .filter(|(name, _)| selected(name) && kind.runs(name))
                        .map(|(name, _)| Measured {
                            name,
                            scenario: match *name {
                                "progress" => progress.clone(),
                                _ => scenario(name, &seeded, &token),
                            },
                            next: Arc::new(AtomicU64::new(0)),
                            outcome: load::Outcome::empty(),
                        })
                        .collect();
                    running.push(Running {
                        size: SizeReport::new(
                            n,
                            store,
                            kind,
                            &seeded,
                            filled.clone(),
                            warm_start,
                            first_list,
                            idle_rss,
                        ),
                        state: state.clone(),
                        pg_db: pg_db.clone(),
                        host,
                        progress,
                        scenarios,
                    });
                }
            }
        }

        let rounds = rounds.max(1);
        let turn = Plan {
            duration: plan.duration / rounds,
            ..plan
        };
        for round in 1..=rounds {
            for (name, _) in SCENARIOS {
                for r in running.iter_mut() {
                    let Some(m) = r.scenarios.iter_mut().find(|m| m.name == *name) else {
                        continue;
                    };
                    let plan = match m.name {
                        // A burst of a fixed number of events, however long it takes.
                        "webhooks" => Plan {
                            max_requests: burst.div_ceil(rounds as u64),
                            duration: Duration::from_secs(600),
                            ..turn
                        },
                        _ => turn,
                    };
                    eprintln!(
                        "bench: round {round}/{rounds} n={} {} {} {}",
                        r.size.n,
                        r.size.store.label(),
                        r.size.host.label(),
                        m.name
                    );
                    let outcome =
                        load::run(r.host.addr, m.scenario.clone(), plan, m.next.clone()).await?;
                    m.outcome.merge(outcome);
                }
            }
        }
        for mut r in running {
            for m in &r.scenarios {
                r.size.rows.push(Row::new(m.name, &m.outcome));
            }
            if r.scenarios.iter().any(|m| m.name == "progress") {
                let (progress, sqlite, pg_db) = (
                    r.progress.clone(),
                    r.state.join("sqlite_db.db"),
                    r.pg_db.clone(),
                );
                let check = tokio::task::spawn_blocking(move || match pg_db {
                    Some(db) => progress.verify(&db.connect()),
                    None => progress.verify(&berth_domain::db::native::SqliteDb(
                        rusqlite::Connection::open_with_flags(
                            sqlite,
                            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                        )?,
                    )),
                })
                .await??;
                r.size.progress_check = Some(check);
            }
            (r.size.rss_peak_kib, r.size.rss_hwm_kib) = r.host.rss_kib();
            drop(r.host);
            report.sizes.push(r.size);
        }
        sim.shutdown();
        anyhow::Ok(())
    })?;
    let text = report.render();
    println!("{text}");
    if let Some(path) = &args.output {
        std::fs::write(path, &text)?;
    }
    Ok(())
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The baseline component, built on first use.
fn hello_wasm(app_dir: &Path) -> Result<PathBuf> {
    let wasm = app_dir.join("target/wasm32-wasip2/component/bench_hello.wasm");
    if !wasm.exists() {
        eprintln!("bench: building the hello-world baseline (bench/hello)");
        let status = std::process::Command::new("cargo")
            .args([
                "build",
                "--target",
                "wasm32-wasip2",
                "--profile",
                "component",
                "-p",
                "bench-hello",
            ])
            .current_dir(app_dir)
            .status()
            .context("cannot run cargo to build bench/hello")?;
        if !status.success() {
            bail!("building bench/hello failed ({status})");
        }
    }
    Ok(wasm)
}

/// One catalog size on one store being measured: its host, its scenarios and what they
/// measured so far.
struct Running {
    size: SizeReport,
    state: PathBuf,
    /// The PostgreSQL database it is served from (`None`: SQLite in `state`).
    pg_db: Option<berth_test_support::postgres::TestDatabase>,
    host: Host,
    progress: Arc<Progress>,
    scenarios: Vec<Measured>,
}

/// A scenario on one size, its request counter and its pooled rounds.
struct Measured {
    name: &'static str,
    scenario: Arc<dyn Scenario>,
    next: Arc<AtomicU64>,
    outcome: load::Outcome,
}
