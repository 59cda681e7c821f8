//! `fermyon:spin/key-value@2.0.0`: Spin's built-in `default` store, kept in `<state-dir>/sqlite_key_value.db`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use rusqlite::OptionalExtension;
use wasmtime::component::{Resource, ResourceTable};

use crate::bindings::fermyon::spin::key_value as v2;
use crate::interfaces::sqlite::{Pool, blocking};

/// Spin's store table capacity per instance.
const MAX_STORES_PER_INSTANCE: usize = 256;

/// The key-value stores an app can use. Without runtime config Spin defines only `default`,
/// stored in the same schema Spin uses, so a state directory works with either host.
pub struct Stores {
    pool: Arc<Pool>,
}

impl Stores {
    pub fn new(state_dir: &Path) -> Stores {
        Stores {
            pool: Pool::new(state_dir.join("sqlite_key_value.db")),
        }
    }

    pub fn is_defined(&self, label: &str) -> bool {
        label == "default"
    }

    /// Creates the file and Spin's `spin_key_value` table.
    pub fn init(&self) -> rusqlite::Result<()> {
        self.pool.get()?.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            )",
        )
    }

    fn with_conn<R>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<R>,
    ) -> Result<R, v2::Error> {
        blocking(|| {
            let conn = self.pool.get()?;
            f(&conn)
        })
        .map_err(|e| {
            tracing::warn!("key-value store error: {e}");
            v2::Error::Other(e.to_string())
        })
    }
}

/// An open store handle held by the guest.
pub struct Store {
    name: String,
}

/// Per-instance host state.
pub struct KeyValueState {
    allowed: Arc<HashSet<String>>,
    stores: Arc<Stores>,
    table: ResourceTable,
    open_stores: usize,
}

impl KeyValueState {
    pub fn new(allowed: Arc<HashSet<String>>, stores: Arc<Stores>) -> KeyValueState {
        KeyValueState {
            allowed,
            stores,
            table: ResourceTable::new(),
            open_stores: 0,
        }
    }

    fn name(&self, store: &Resource<Store>) -> wasmtime::Result<String> {
        Ok(self.table.get(store)?.name.clone())
    }
}

impl v2::Host for KeyValueState {}

impl v2::HostStore for KeyValueState {
    fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<Store>, v2::Error>> {
        // Spin checks the component's `key_value_stores` first: an unlisted label is
        // access-denied whether or not it exists.
        if !self.allowed.contains(&label) {
            return Ok(Err(v2::Error::AccessDenied));
        }
        if !self.stores.is_defined(&label) {
            return Ok(Err(v2::Error::NoSuchStore));
        }
        if self.open_stores >= MAX_STORES_PER_INSTANCE {
            return Ok(Err(v2::Error::StoreTableFull));
        }
        self.open_stores += 1;
        Ok(Ok(self.table.push(Store { name: label })?))
    }

    fn get(
        &mut self,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, v2::Error>> {
        let name = self.name(&store)?;
        Ok(self.stores.with_conn(|c| {
            c.prepare_cached("SELECT value FROM spin_key_value WHERE store=$1 AND key=$2")?
                .query_row([&name, &key], |r| r.get::<_, Vec<u8>>(0))
                .optional()
        }))
    }

    fn set(
        &mut self,
        store: Resource<Store>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v2::Error>> {
        let name = self.name(&store)?;
        Ok(self.stores.with_conn(|c| {
            c.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT(store, key) DO UPDATE SET value=$3",
            )?
            .execute(rusqlite::params![name, key, value])
            .map(drop)
        }))
    }

    fn delete(
        &mut self,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<(), v2::Error>> {
        let name = self.name(&store)?;
        Ok(self.stores.with_conn(|c| {
            c.prepare_cached("DELETE FROM spin_key_value WHERE store=$1 AND key=$2")?
                .execute([&name, &key])
                .map(drop)
        }))
    }

    fn exists(
        &mut self,
        store: Resource<Store>,
        key: String,
    ) -> wasmtime::Result<Result<bool, v2::Error>> {
        let name = self.name(&store)?;
        Ok(self.stores.with_conn(|c| {
            c.prepare_cached("SELECT 1 FROM spin_key_value WHERE store=$1 AND key=$2")?
                .exists([&name, &key])
        }))
    }

    fn get_keys(
        &mut self,
        store: Resource<Store>,
    ) -> wasmtime::Result<Result<Vec<String>, v2::Error>> {
        let name = self.name(&store)?;
        Ok(self.stores.with_conn(|c| {
            c.prepare_cached("SELECT key FROM spin_key_value WHERE store=$1")?
                .query_map([&name], |r| r.get::<_, String>(0))?
                .collect()
        }))
    }

    fn drop(&mut self, store: Resource<Store>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        self.open_stores -= 1;
        Ok(())
    }
}
