//! The wasmtime engine, the on-disk compilation cache, the linker and per-request store state.

use std::hash::{Hash, Hasher};
use std::path::Path;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings;
use crate::interfaces::key_value::KeyValueState;
use crate::interfaces::outbound_http::OutboundHttp;
use crate::interfaces::postgres::PostgresState;
use crate::interfaces::sqlite::SqliteState;
use crate::interfaces::variables::VariablesState;

/// Everything one component instance (one request) can reach.
pub struct InstanceState {
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub hooks: OutboundHttp,
    pub sqlite: SqliteState,
    pub postgres: PostgresState,
    pub key_value: KeyValueState,
    pub variables: VariablesState,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Concurrent instances the pooling allocator reserves slots for (override: BERTH_MAX_INSTANCES).
pub fn max_instances() -> u32 {
    std::env::var("BERTH_MAX_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn base_config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // `BERTH_PROFILE=perfmap`: name JIT-compiled guest functions for `perf` (/tmp/perf-PID.map).
    if std::env::var("BERTH_PROFILE").as_deref() == Ok("perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

/// Creates the engine. The pooling allocator makes per-request instantiation a few memcpys
/// instead of mmap/munmap calls, but needs a large virtual-memory reservation up front, so
/// fall back to on-demand allocation where that reservation is refused (small VMs, ulimit -v).
pub fn engine() -> Result<Engine> {
    if std::env::var("BERTH_POOLING").as_deref() != Ok("0") {
        const MB: usize = 1 << 20;
        let n = max_instances();
        let mut pool = PoolingAllocationConfig::default();
        // Sized like Spin's defaults, scaled to berth's instance count: a component built
        // with the WASI adapter has a handful of core instances, memories and tables.
        pool.total_component_instances(n)
            .total_memories(n)
            .total_tables(2 * n)
            .total_stacks(n)
            .total_core_instances(4 * n)
            .table_elements(100_000)
            .max_component_instance_size(10 * MB)
            .max_core_instance_size(10 * MB)
            .max_core_instances_per_component(200)
            .max_tables_per_component(64)
            .max_memories_per_component(32)
            .max_tables_per_module(2)
            .max_memories_per_module(2)
            .max_memory_size(4 << 30)
            .linear_memory_keep_resident(2 * MB)
            .table_keep_resident(MB / 2)
            // Linux 6.7+: reset only the pages an instance dirtied instead of memsetting
            // the whole resident 2 MiB on every request (falls back where unsupported).
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = base_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        match Engine::new(&config) {
            Ok(engine) => return Ok(engine),
            Err(e) => {
                tracing::warn!("pooling allocator unavailable ({e}); using on-demand allocation")
            }
        }
    }
    Engine::new(&base_config()).map_err(anyhow::Error::from)
}

/// Adds every interface berth implements: WASI 0.2.x (the linker resolves 0.2.0..0.2.6
/// imports by semver), wasi:http, and Spin's SQLite, PostgreSQL, key-value and variables APIs.
pub fn linker(engine: &Engine) -> Result<Linker<InstanceState>> {
    let mut linker = Linker::<InstanceState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    bindings::fermyon::spin::sqlite::add_to_linker::<_, HasSelf<SqliteState>>(&mut linker, |s| {
        &mut s.sqlite
    })?;
    bindings::spin::sqlite::sqlite::add_to_linker::<_, HasSelf<SqliteState>>(&mut linker, |s| {
        &mut s.sqlite
    })?;
    bindings::spin::postgres3_0_0::postgres::add_to_linker::<_, HasSelf<PostgresState>>(
        &mut linker,
        |s| &mut s.postgres,
    )?;
    bindings::spin::postgres4_0_0::postgres::add_to_linker::<_, HasSelf<PostgresState>>(
        &mut linker,
        |s| &mut s.postgres,
    )?;
    bindings::fermyon::spin::key_value::add_to_linker::<_, HasSelf<KeyValueState>>(
        &mut linker,
        |s| &mut s.key_value,
    )?;
    bindings::fermyon::spin::variables::add_to_linker::<_, HasSelf<VariablesState>>(
        &mut linker,
        |s| &mut s.variables,
    )?;
    Ok(linker)
}

/// Feeds `Hash` output into SHA-256 so the engine fingerprint is stable across runs.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Cache file name: SHA-256 of the Wasm bytes plus a fingerprint of the engine, which covers
/// the wasmtime version and every codegen-relevant setting (Wasmtime's own compatibility hash).
pub fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut h = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    let engine_hash = hex(&h.0.finalize()[..8]);
    format!("{}-{engine_hash}", hex(&Sha256::digest(wasm)))
}

/// Compiles a component, or loads it from `<cache_dir>/<key>.cwasm`. Compiling the
/// components takes seconds; a warm restart takes milliseconds.
pub fn load_component(engine: &Engine, wasm_path: &Path, cache_dir: &Path) -> Result<Component> {
    let wasm =
        std::fs::read(wasm_path).with_context(|| format!("cannot read {}", wasm_path.display()))?;
    let cached = cache_dir.join(format!("{}.cwasm", cache_key(engine, &wasm)));
    if cached.is_file() {
        // SAFETY: the file is one berth wrote into its own state directory from a compilation
        // by an engine with the same fingerprint; deserialization still validates the header
        // and version, and any failure falls back to compiling.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(c) => {
                tracing::debug!("loaded compiled component from {}", cached.display());
                return Ok(c);
            }
            Err(e) => tracing::warn!(
                "ignoring unusable compilation cache {}: {e}",
                cached.display()
            ),
        }
    }
    let component = Component::new(engine, &wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", wasm_path.display()))?;
    if let Err(e) = write_cache(&component, cache_dir, &cached) {
        // The cache is an optimisation: never fail start-up because of it.
        tracing::warn!("cannot write compilation cache {}: {e:#}", cached.display());
    }
    Ok(component)
}

fn write_cache(component: &Component, cache_dir: &Path, path: &Path) -> Result<()> {
    std::fs::create_dir_all(cache_dir)?;
    let bytes = component.serialize().map_err(anyhow::Error::from)?;
    // Write then rename, so a concurrent start never maps a half-written file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_depends_on_bytes_and_engine() {
        let engine = Engine::new(&base_config()).unwrap();
        let a = cache_key(&engine, b"\0asm one");
        assert_eq!(a, cache_key(&engine, b"\0asm one"));
        assert_ne!(a, cache_key(&engine, b"\0asm two"));
        let mut other = base_config();
        other.cranelift_opt_level(wasmtime::OptLevel::None);
        assert_ne!(a, cache_key(&Engine::new(&other).unwrap(), b"\0asm one"));
    }
}
