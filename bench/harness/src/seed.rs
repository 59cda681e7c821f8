//! Synthetic but realistic catalogs: N images in repositories of 1–8 tags, frameworks with
//! their versions, CUDA/Python builds, GPU/CPU/NPU, owners, public/private, multi-arch
//! children in `image_platforms`, scopes in `image_scopes` and import history in `imports`.
//!
//! Rows go straight into `<state>/sqlite_db.db` in one transaction, after berth's own
//! migrations, so a million images take seconds rather than a million HTTP requests.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use berth_domain::db::native::SqliteDb;
use rusqlite::{Connection, params};

/// The user the benchmark calls as: owns a share of the private images, like any user.
pub const BENCH_USER_INDEX: usize = 7;
/// Running imports that receive worker progress callbacks (few, so callbacks contend).
const PROGRESS_TARGETS: usize = 16;
/// Ids kept in memory for request generation.
const SAMPLE: usize = 50_000;

pub fn owner_name(i: usize) -> String {
    format!("user{i:05}")
}

/// What the generator put in the database, for building requests and checking results.
pub struct Seeded {
    pub images: usize,
    pub platforms: usize,
    pub scopes: usize,
    pub imports: usize,
    pub elapsed: Duration,
    pub bench_user: String,
    /// Images the bench user may see.
    pub visible_ids: Vec<i64>,
    /// Visible images whose last import finished (importing-details needs no Harbor call).
    pub finished_import_ids: Vec<i64>,
    /// Execution ids of finished imports (Harbor REPLICATION webhooks about them).
    pub finished_executions: Vec<i64>,
    /// `registry/repository:tag` of running imports that worker callbacks report on.
    pub progress_targets: Vec<String>,
}

/// splitmix64: small, fast and deterministic, so every run seeds the same catalog.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len);
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next()));
        }
        s.truncate(len);
        s
    }
}

/// A framework as images carry it: id, display name, versions, category, weight.
struct Framework {
    id: Option<&'static str>,
    display: &'static str,
    versions: &'static [&'static str],
    category: &'static str,
    weight: usize,
}

const FRAMEWORKS: &[Framework] = &[
    Framework {
        id: Some("pytorch"),
        display: "PyTorch",
        versions: &["2.1.2", "2.2.2", "2.3.1", "2.4.1", "2.5.1"],
        category: "pytorch",
        weight: 30,
    },
    Framework {
        id: Some("tensorflow"),
        display: "TensorFlow",
        versions: &["2.12.0", "2.13.1", "2.15.0", "2.16.1"],
        category: "tensorflow",
        weight: 14,
    },
    Framework {
        id: Some("vllm"),
        display: "vLLM",
        versions: &["0.4.2", "0.5.4", "0.6.3"],
        category: "llm",
        weight: 9,
    },
    Framework {
        id: Some("jupyterlab"),
        display: "JupyterLab",
        versions: &["4.0.2", "4.1.5", "4.2.4"],
        category: "jupyter",
        weight: 10,
    },
    Framework {
        id: Some("jax"),
        display: "JAX",
        versions: &["0.4.23", "0.4.30"],
        category: "jax",
        weight: 5,
    },
    Framework {
        id: Some("paddlepaddle"),
        display: "PaddlePaddle",
        versions: &["2.5.2", "2.6.1"],
        category: "paddlepaddle",
        weight: 5,
    },
    Framework {
        id: Some("mindspore"),
        display: "MindSpore",
        versions: &["2.2.14", "2.3.0"],
        category: "mindspore",
        weight: 4,
    },
    Framework {
        id: Some("triton"),
        display: "Triton Inference Server",
        versions: &["24.01", "24.05", "24.08"],
        category: "inference",
        weight: 4,
    },
    Framework {
        id: Some("onnxruntime"),
        display: "ONNX Runtime",
        versions: &["1.17.3", "1.18.1"],
        category: "inference",
        weight: 4,
    },
    Framework {
        id: None,
        display: "CUDA",
        versions: &[""],
        category: "cuda",
        weight: 15,
    },
];

const FLAVORS: &[&str] = &[
    "train", "infer", "dev", "notebook", "serving", "finetune", "base", "runtime", "bench",
    "research",
];
const CUDA: &[&str] = &["11.8", "12.1", "12.2", "12.4", "12.6"];
const PYTHON: &[&str] = &["3.8", "3.9", "3.10", "3.11", "3.12"];
const SCOPES: &[&str] = &["开发机", "训练", "推理"];
const GIB: i64 = 1 << 30;

fn pick_framework(rng: &mut Rng) -> &'static Framework {
    let total: usize = FRAMEWORKS.iter().map(|f| f.weight).sum();
    let mut x = rng.below(total);
    for f in FRAMEWORKS {
        if x < f.weight {
            return f;
        }
        x -= f.weight;
    }
    &FRAMEWORKS[0]
}

/// `2023-01-01T00:00:00.000Z` plus `secs`, as berth stores times (RFC 3339, UTC, ms).
fn timestamp(secs: i64) -> String {
    let t = 1_672_531_200 + secs;
    let (days, rem) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

/// What a repository's tags share.
struct Repo {
    registry: &'static str,
    repository: String,
    base_name: String,
    framework: &'static Framework,
    chip: &'static str,
    owner: String,
    official: bool,
    visibility: &'static str,
    multi_arch: bool,
    scopes: Vec<&'static str>,
    tags: usize,
}

fn new_repo(rng: &mut Rng, index: usize, owners: usize) -> Repo {
    let framework = pick_framework(rng);
    let official = rng.chance(1);
    let flavor = *rng.pick(FLAVORS);
    let fw = framework.id.unwrap_or("cuda");
    let owner = if official {
        "admin".to_string()
    } else {
        owner_name(rng.below(owners))
    };
    let registry = match rng.below(20) {
        0 => "docker.io",
        1 => "nvcr.io",
        _ => "harbor.remotegpu.com",
    };
    let repository = if official {
        format!("library/{fw}-{flavor}-{index}")
    } else {
        format!("{owner}/{fw}-{flavor}-{index}")
    };
    let chip = match framework.id {
        Some("mindspore") => "NPU",
        Some("paddlepaddle") if rng.chance(40) => "NPU",
        Some("jupyterlab" | "onnxruntime") if rng.chance(40) => "CPU",
        _ if rng.chance(8) => "CPU",
        _ => "GPU",
    };
    let mut scopes: Vec<&'static str> = SCOPES.iter().copied().filter(|_| rng.chance(55)).collect();
    if scopes.is_empty() {
        scopes.push(*rng.pick(SCOPES));
    }
    Repo {
        registry,
        repository,
        base_name: format!("{fw}-{flavor}-{index}"),
        framework,
        chip,
        owner,
        official,
        visibility: if official || rng.chance(65) {
            "public"
        } else {
            "private"
        },
        multi_arch: rng.chance(20),
        scopes,
        tags: 1 + rng.below(8),
    }
}

/// Creates `<state>/sqlite_db.db` afresh with berth's schema and `n` synthetic images.
pub fn seed(state_dir: &Path, n: usize) -> Result<Seeded> {
    std::fs::create_dir_all(state_dir)?;
    let db_path = state_dir.join("sqlite_db.db");
    for suffix in ["", "-wal", "-shm"] {
        let p = state_dir.join(format!("sqlite_db.db{suffix}"));
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    let started = Instant::now();
    let conn = Connection::open(&db_path)?;
    let db = SqliteDb(conn);
    berth_domain::migrations::ensure(&db).map_err(|e| anyhow::anyhow!("migrations: {e}"))?;
    let conn = db.0;
    // One transaction, no journal: a crash mid-seed just means seeding again.
    conn.execute_batch(
        "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144; \
         PRAGMA temp_store=MEMORY;",
    )?;
    let mut out = insert_all(&conn, n)?;
    conn.execute_batch("PRAGMA journal_mode=WAL;")?;
    drop(conn);
    out.elapsed = started.elapsed();
    Ok(out)
}

/// An existing benchmark database (`--reuse`): migrated to this build's schema first, so
/// no request pays for a migration, and read back for request generation.
pub fn reuse(state_dir: &Path) -> Result<Seeded> {
    let started = Instant::now();
    let db = SqliteDb(Connection::open(state_dir.join("sqlite_db.db"))?);
    berth_domain::migrations::ensure(&db).map_err(|e| anyhow::anyhow!("migrations: {e}"))?;
    let conn = db.0;
    let count = |sql: &str| -> Result<usize> {
        Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as usize)
    };
    let images = count("SELECT COUNT(*) FROM images")?;
    let bench_user = owner_name(BENCH_USER_INDEX);
    let ids = |sql: &str| -> Result<Vec<i64>> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([&bench_user], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    };
    let visible = "((i.visibility = 'public' AND i.publication = 'online') OR i.owner = ?1)";
    let visible_ids = ids(&format!(
        "SELECT id FROM images i WHERE {visible} ORDER BY id LIMIT {SAMPLE}"
    ))?;
    let finished = format!(
        "FROM imports m JOIN images i ON i.id = m.image_id WHERE m.state IN ('succeeded', 'failed') \
         AND {visible} ORDER BY m.id LIMIT {SAMPLE}"
    );
    let finished_import_ids = ids(&format!("SELECT m.image_id {finished}"))?;
    let finished_executions = ids(&format!("SELECT m.execution_id {finished}"))?;
    let mut stmt = conn.prepare(&format!(
        "SELECT i.registry || '/' || i.repository || ':' || i.tag FROM imports m \
         JOIN images i ON i.id = m.image_id WHERE m.state = 'running' ORDER BY m.id LIMIT {PROGRESS_TARGETS}"
    ))?;
    let progress_targets: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    drop(stmt);
    // Earlier runs' layer reports would make this run's callbacks no-ops.
    conn.execute(
        "UPDATE imports SET layers_detail = '{}', progress = 30 WHERE state = 'running'",
        [],
    )?;
    Ok(Seeded {
        images,
        platforms: count("SELECT COUNT(*) FROM image_platforms")?,
        scopes: count("SELECT COUNT(*) FROM image_scopes")?,
        imports: count("SELECT COUNT(*) FROM imports")?,
        elapsed: started.elapsed(),
        bench_user,
        visible_ids,
        finished_import_ids,
        finished_executions,
        progress_targets,
    })
}

fn insert_all(conn: &Connection, n: usize) -> Result<Seeded> {
    let tx = conn.unchecked_transaction()?;
    let mut rng = Rng::new(0xBE27_4000 ^ n as u64);
    let owners = (n / 500).clamp(50, 5_000);
    let bench_user = owner_name(BENCH_USER_INDEX);
    let mut seeded = Seeded {
        images: 0,
        platforms: 0,
        scopes: 0,
        imports: 0,
        elapsed: Duration::ZERO,
        bench_user: bench_user.clone(),
        visible_ids: Vec::new(),
        finished_import_ids: Vec::new(),
        finished_executions: Vec::new(),
        progress_targets: Vec::new(),
    };
    let mut image = tx.prepare(
        "INSERT INTO images (name, display_name, description, category, framework, framework_version, \
         frameworks, cuda_version, preset_cuda, python_version, chip_type, applicable_scopes, registry, \
         repository, tag, digest, size, arch, os, is_official, visibility, owner, status, publication, \
         origin, include_type, revision, created_by, updated_by, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, \
         ?20, ?21, ?22, ?23, ?24, ?25, 'full', ?26, ?27, ?27, ?28, ?29)",
    )?;
    let mut scope = tx.prepare("INSERT INTO image_scopes (image_id, scope) VALUES (?1, ?2)")?;
    let mut platform = tx.prepare(
        "INSERT INTO image_platforms (image_id, digest, architecture, os, variant, size) \
         VALUES (?1, ?2, ?3, 'linux', ?4, ?5)",
    )?;
    let mut import = tx.prepare(
        "INSERT INTO imports (image_id, source, source_registry, state, progress, layers_detail, message, \
         harbor_registry_id, policy_id, execution_id, attempt, started_at, updated_at, last_event_at, deadline_at) \
         VALUES (?1, ?2, 'docker.io', ?3, ?4, '{}', ?5, 1, ?6, ?7, 1, ?8, ?9, ?10, ?11)",
    )?;
    // Creation times spread over two years, increasing with the id, as a real catalog grows.
    let span = 2 * 365 * 86_400_i64;
    let mut repo_index = 0;
    let mut repo = new_repo(&mut rng, repo_index, owners);
    let mut tag_in_repo = 0;
    let mut execution = 1_000_i64;
    for i in 0..n {
        if tag_in_repo == repo.tags {
            repo_index += 1;
            repo = new_repo(&mut rng, repo_index, owners);
            tag_in_repo = 0;
        }
        let f = repo.framework;
        let version = *rng.pick(f.versions);
        let cuda = (repo.chip == "GPU").then(|| *rng.pick(CUDA));
        let python = *rng.pick(PYTHON);
        let mut tag = match (f.id, cuda) {
            (None, Some(c)) => format!("{c}-cudnn9-py{python}"),
            (None, None) => format!("base-py{python}"),
            (Some(_), Some(c)) => format!("{version}-cuda{c}-py{python}"),
            (Some(_), None) => format!("{version}-{}-py{python}", repo.chip.to_lowercase()),
        };
        if tag_in_repo > 0 {
            tag.push_str(&format!("-r{tag_in_repo}"));
        }
        let name = format!("{}:{tag}", repo.base_name);
        let display = (!rng.chance(15)).then(|| {
            let mut d = if f.id.is_some() {
                format!("{} {version}", f.display)
            } else {
                "CUDA base".to_string()
            };
            if let Some(c) = cuda {
                d.push_str(&format!(" · CUDA {c}"));
            }
            d.push_str(&format!(" · Python {python}"));
            d
        });
        let description = format!(
            "{} environment: {}{}, Python {python}, maintained by {}",
            repo.base_name,
            if f.id.is_some() {
                format!("{} {version}", f.display)
            } else {
                "no framework".into()
            },
            cuda.map(|c| format!(", CUDA {c}")).unwrap_or_default(),
            repo.owner
        );
        let mut frameworks = Vec::new();
        if let Some(_id) = f.id {
            frameworks.push(f.display);
            if rng.chance(10) {
                frameworks.push("DeepSpeed");
            }
        }
        let frameworks = serde_json::to_string(&frameworks)?;
        let scopes_json = serde_json::to_string(&repo.scopes)?;
        let category = if !repo.official && rng.chance(5) {
            "custom"
        } else {
            f.category
        };
        let origin = if repo.official {
            "seed"
        } else {
            *rng.pick(&["import", "import", "build", "manual"])
        };
        let status = match rng.below(100) {
            0..=1 => "importing",
            2..=4 => "failed",
            5..=7 if origin == "build" => "building",
            _ => "ready",
        };
        let status = if origin != "import" && status == "importing" {
            "ready"
        } else {
            status
        };
        let publication = if repo.official {
            "online"
        } else {
            match rng.below(100) {
                0..=9 => "offline",
                10..=14 => "pending",
                _ => "online",
            }
        };
        let created = span * i as i64 / n.max(1) as i64 + rng.below(600) as i64;
        let updated = created + rng.below(30 * 86_400) as i64;
        let size = GIB + (rng.next() % (19 * GIB as u64)) as i64;
        let arch = if repo.multi_arch {
            "multi"
        } else if rng.chance(10) {
            "arm64"
        } else {
            "amd64"
        };
        let digest = format!("sha256:{}", rng.hex(64));
        image.execute(params![
            name,
            display,
            description,
            category,
            f.id,
            f.id.map(|_| version),
            frameworks,
            cuda,
            cuda.is_some(),
            python,
            repo.chip,
            scopes_json,
            repo.registry,
            repo.repository,
            tag,
            digest,
            size,
            arch,
            "linux",
            repo.official,
            repo.visibility,
            repo.owner,
            status,
            publication,
            origin,
            1 + rng.below(3) as i64,
            repo.owner,
            timestamp(created),
            timestamp(updated),
        ])?;
        let id = tx.last_insert_rowid();
        seeded.images += 1;
        for s in &repo.scopes {
            scope.execute(params![id, s])?;
            seeded.scopes += 1;
        }
        if repo.multi_arch {
            let mut archs = vec![("amd64", None), ("arm64", Some("v8"))];
            if rng.chance(25) {
                archs.push(("ppc64le", None));
            }
            for (a, v) in archs {
                platform.execute(params![
                    id,
                    format!("sha256:{}", rng.hex(64)),
                    a,
                    v,
                    size / 2
                ])?;
                seeded.platforms += 1;
            }
        }
        let visible = (repo.visibility == "public" && publication == "online")
            || repo.owner == seeded.bench_user;
        if visible && seeded.visible_ids.len() < SAMPLE {
            seeded.visible_ids.push(id);
        }
        if origin == "import" {
            execution += 1;
            let (state, progress, message) = match status {
                "ready" => ("succeeded", 100, None),
                "failed" => (
                    "failed",
                    40,
                    Some("Harbor's replication failed: pull access denied"),
                ),
                _ => ("running", 30, None),
            };
            let finished = state != "running";
            let deadline = if finished {
                timestamp(created + 3_600)
            } else {
                // Never overdue during a run: reads and callbacks stay local.
                "2099-01-01T00:00:00.000Z".to_string()
            };
            import.execute(params![
                id,
                format!("docker.io/{}:{tag}", repo.repository),
                state,
                progress,
                message,
                execution,
                execution,
                timestamp(created),
                timestamp(created + 600),
                timestamp(created + 600),
                deadline,
            ])?;
            seeded.imports += 1;
            if finished && visible && seeded.finished_import_ids.len() < SAMPLE {
                seeded.finished_import_ids.push(id);
                seeded.finished_executions.push(execution);
            }
            if !finished && seeded.progress_targets.len() < PROGRESS_TARGETS {
                seeded
                    .progress_targets
                    .push(format!("{}/{}:{tag}", repo.registry, repo.repository));
            }
        }
        tag_in_repo += 1;
    }
    drop((image, scope, platform, import));
    tx.commit()?;
    Ok(seeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(timestamp(0), "2023-01-01T00:00:00.000Z");
        assert_eq!(timestamp(59 * 86_400 + 3_661), "2023-03-01T01:01:01.000Z");
        assert_eq!(timestamp(2 * 365 * 86_400), "2024-12-31T00:00:00.000Z");
    }

    #[test]
    fn seeds_a_consistent_catalog() {
        let dir = std::env::temp_dir().join(format!("berth-bench-seed-{}", std::process::id()));
        let s = seed(&dir, 500).unwrap();
        assert_eq!(s.images, 500);
        assert!(s.scopes >= 500 && s.imports > 0 && s.platforms > 0);
        assert!(!s.visible_ids.is_empty() && !s.finished_import_ids.is_empty());
        assert!(!s.progress_targets.is_empty());
        let r = reuse(&dir).unwrap();
        assert_eq!(r.finished_import_ids, s.finished_import_ids);
        assert_eq!(r.progress_targets, s.progress_targets);
        std::fs::remove_dir_all(&dir).ok();
    }
}
