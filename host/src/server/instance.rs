//! One request, one fresh component instance (as in Spin): its store holds the state of
//! every interface the guest may call, and the response goes back as soon as the guest
//! sets it while the guest keeps streaming the body.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use http::{Request, Response};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpView};

use super::{ComponentRuntime, Server};
use crate::interfaces::key_value::KeyValueState;
use crate::interfaces::outbound_http::OutboundHttp;
use crate::interfaces::postgres::PostgresState;
use crate::interfaces::sqlite::SqliteState;
use crate::interfaces::variables::VariablesState;
use crate::runtime::InstanceState;

impl Server {
    fn new_store(self: &Arc<Self>, component: &ComponentRuntime) -> Store<InstanceState> {
        let wasi = WasiCtx::builder()
            .envs(&component.environment)
            .inherit_stdout()
            .inherit_stderr()
            .build();
        let state = InstanceState {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks: OutboundHttp {
                component_id: component.id.clone(),
                allowed: component.allowed_hosts.clone(),
                server: self.clone(),
            },
            sqlite: SqliteState::new(component.sqlite_allowed.clone(), self.databases.clone()),
            postgres: PostgresState::new(
                component.id.clone(),
                component.allowed_hosts.clone(),
                self.pg_pools.clone(),
            ),
            key_value: KeyValueState::new(component.kv_allowed.clone(), self.stores.clone()),
            variables: VariablesState {
                vars: component.variables.clone(),
            },
        };
        Store::new(&self.engine, state)
    }

    /// Runs the guest's `wasi:http/incoming-handler` in a fresh instance (as Spin's
    /// WasiHttpExecutor does): the response is returned as soon as the guest sets it, while
    /// the guest task keeps streaming the body.
    pub(super) async fn execute(
        self: &Arc<Self>,
        component: &Arc<ComponentRuntime>,
        req: Request<WasiBody>,
        permit: OwnedSemaphorePermit,
    ) -> Result<Response<WasiBody>> {
        let mut store = self.new_store(component);
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(anyhow::Error::from)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let response = store
            .data_mut()
            .http()
            .new_response_outparam(tx)
            .map_err(anyhow::Error::from)?;
        let pre = component.pre.clone();
        let task = tokio::spawn(async move {
            // Held until the guest is done, body streaming included.
            let _permit = permit;
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, response)
                .await
        });

        match rx.await {
            Ok(Ok(resp)) => {
                let id = component.id.clone();
                tokio::spawn(async move {
                    match task.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::error!(
                            "component {id}: error after the response started (body may be truncated): {e:#}"
                        ),
                        Err(e) => tracing::error!("component {id}: task failed: {e}"),
                    }
                });
                Ok(resp)
            }
            Ok(Err(code)) => Err(anyhow!("component returned an error response: {code:?}")),
            Err(_) => match task.await {
                Ok(Ok(())) => Err(anyhow!(
                    "guest failed to produce a response prior to returning"
                )),
                Ok(Err(e)) => Err(anyhow::Error::from(e).context("guest invocation failed")),
                Err(e) => Err(anyhow!("guest invocation panicked: {e}")),
            },
        }
    }
}
