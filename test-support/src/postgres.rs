//! A throwaway PostgreSQL for the end-to-end tests: `initdb` + `pg_ctl` in a temp dir, on a
//! free loopback port, TLS off, trust authentication. One cluster per test binary (started
//! on first use); every caller gets a fresh database in it.
//!
//! - Binaries: `$BERTH_PG_BIN` (a directory holding `initdb` and `pg_ctl`), else the newest
//!   `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package), else `PATH`.
//! - PostgreSQL refuses to run as root: when the tests run as root, the cluster's files are
//!   owned by, and its commands run as, the `postgres` user (or `nobody` without one).
//! - The cluster stops and its directory is removed when the test process exits, however it
//!   exits: a small watchdog process waits for it.

use std::cell::RefCell;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use berth_domain::db::{Db, DbError, Dialect, Rows, Value, to_postgres_placeholders};
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// A running cluster.
pub struct Cluster {
    pub port: u16,
    /// The unprivileged account the cluster runs as (uid, gid), when the tests run as root.
    run_as: Option<(u32, u32)>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(1);

/// The test binary's cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| Cluster::start().unwrap_or_else(|e| panic!("PostgreSQL: {e}")))
}

/// Whether a cluster can be started here: PostgreSQL's binaries are found (see [`bin_dir`]).
pub fn available() -> Result<(), String> {
    let bin = bin_dir()?;
    if bin.join("initdb").is_file() && bin.join("pg_ctl").is_file() {
        Ok(())
    } else {
        Err(format!(
            "initdb/pg_ctl not found in {} (BERTH_PG_BIN)",
            bin.display()
        ))
    }
}

/// A fresh, empty database on the shared cluster.
pub fn fresh_database() -> TestDatabase {
    cluster().create_database()
}

/// One database of the cluster.
#[derive(Clone, Debug)]
pub struct TestDatabase {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl TestDatabase {
    /// The connection string the components get (`db_url`), TLS off as the cluster has none.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@{}:{}/{}?sslmode=disable",
            self.host, self.port, self.name
        )
    }

    /// The Spin variables that select this database: store, db_url, db_host, db_port.
    pub fn variables(&self) -> Vec<(String, String)> {
        vec![
            ("store".into(), "postgres".into()),
            ("db_url".into(), self.url()),
            ("db_host".into(), self.host.clone()),
            ("db_port".into(), self.port.to_string()),
        ]
    }

    /// A native connection (fixtures, assertions).
    pub fn connect(&self) -> PgDb {
        let client = postgres::Client::connect(&self.url(), postgres::NoTls)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url()));
        PgDb(RefCell::new(client))
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// (uid, gid) of an account in /etc/passwd.
fn account(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// The directory holding `initdb` and `pg_ctl`.
fn bin_dir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("BERTH_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
    }
    Err(
        "initdb/pg_ctl not found: install PostgreSQL (`apt-get install -y postgresql`) or set \
         BERTH_PG_BIN"
            .into(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    fn start() -> Result<Cluster, String> {
        let bin = bin_dir()?;
        let run_as = if is_root() {
            Some(
                account("postgres")
                    .or_else(|| account("nobody"))
                    .ok_or("running as root, and neither a postgres nor a nobody account exists")?,
            )
        } else {
            None
        };
        // Kept until the watchdog removes it (not a TempDir: that would delete it on drop).
        let dir = tempfile::Builder::new()
            .prefix("berth-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
        let data = dir.join("data");
        let mut cluster = Cluster { port: 0, run_as };
        cluster.watchdog(&bin, &dir)?;

        let out = cluster
            .command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // The port is picked before the server binds it: retry if another process took it.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let options = format!(
                "-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c ssl=off -c fsync=off \
                 -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 \
                 -c shared_buffers=64MB",
                sock = dir.display()
            );
            let out = cluster
                .command(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-w", "-t", "60", "-o", &options, "start"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
            if out.status.success() {
                cluster.port = port;
                return Ok(cluster);
            }
            last = format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
            );
        }
        Err(format!("pg_ctl start failed: {last}"))
    }

    /// Stops the cluster and removes its directory once this process has exited.
    fn watchdog(&self, bin: &Path, dir: &Path) -> Result<(), String> {
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 0.5; done; \
             '{pg_ctl}' -D '{data}' -m immediate stop; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = bin.join("pg_ctl").display(),
            data = dir.join("data").display(),
            dir = dir.display(),
        );
        self.command(Path::new("/bin/sh"))
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C aimed at the tests must not skip the clean-up.
            .process_group(0)
            .spawn()
            .map(drop)
            .map_err(|e| format!("cannot start the clean-up watchdog: {e}"))
    }

    /// `CREATE DATABASE` with a name unique in this cluster.
    pub fn create_database(&self) -> TestDatabase {
        let name = format!(
            "berth_{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let admin = TestDatabase {
            name: "postgres".into(),
            host: "127.0.0.1".into(),
            port: self.port,
        };
        admin
            .connect()
            .0
            .borrow_mut()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        TestDatabase { name, ..admin }
    }
}

/// berth's `Db` over the native `postgres` crate: fixtures are written with the same SQL and
/// migrations the components use.
pub struct PgDb(pub RefCell<postgres::Client>);

/// A NULL of whatever type the statement expects.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(
        &self,
        _: &Type,
        _: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

impl Db for PgDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let sql = to_postgres_placeholders(sql);
        let boxed: Vec<Box<dyn ToSql + Sync>> = params
            .iter()
            .map(|v| -> Box<dyn ToSql + Sync> {
                match v {
                    Value::Null => Box::new(Null),
                    Value::Integer(i) => Box::new(*i),
                    Value::Real(f) => Box::new(*f),
                    Value::Text(s) => Box::new(s.clone()),
                    Value::Blob(b) => Box::new(b.clone()),
                }
            })
            .collect();
        let refs: Vec<&(dyn ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        let err = |e: postgres::Error| {
            DbError::from_message(match e.as_db_error() {
                Some(db) => format!("db error: {db}"),
                None => e.to_string(),
            })
        };
        let mut client = self.0.borrow_mut();
        let stmt = client.prepare(&sql).map_err(err)?;
        let rows = client.query(&stmt, &refs).map_err(err)?;
        let columns = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
        let rows = rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| {
                        let t = row.columns()[i].type_().clone();
                        let v = match t {
                            Type::INT8 => row.get::<_, Option<i64>>(i).map(Value::Integer),
                            Type::INT4 => row
                                .get::<_, Option<i32>>(i)
                                .map(|v| Value::Integer(v.into())),
                            Type::INT2 => row
                                .get::<_, Option<i16>>(i)
                                .map(|v| Value::Integer(v.into())),
                            Type::BOOL => row
                                .get::<_, Option<bool>>(i)
                                .map(|v| Value::Integer(v.into())),
                            Type::FLOAT8 => row.get::<_, Option<f64>>(i).map(Value::Real),
                            Type::BYTEA => row.get::<_, Option<Vec<u8>>>(i).map(Value::Blob),
                            // Text, and NULL for what has no text form (e.g. `void`).
                            _ => row
                                .try_get::<_, Option<String>>(i)
                                .ok()
                                .flatten()
                                .map(Value::Text),
                        };
                        v.unwrap_or(Value::Null)
                    })
                    .collect()
            })
            .collect();
        Ok(Rows { columns, rows })
    }
}
