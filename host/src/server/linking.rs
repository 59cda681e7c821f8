//! Pre-linking a component once, at start: every import berth implements comes from the
//! shared linker; an interface berth does not implement at all is defined with trapping
//! functions, so only an actual call to it fails.

use anyhow::{Context, Result, anyhow, bail};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::runtime::InstanceState;

/// Interfaces berth implements (any 0.2.x / listed version); anything else may be stubbed.
const IMPLEMENTED_PREFIXES: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
    "wasi:http/",
    "fermyon:spin/sqlite@",
    "fermyon:spin/key-value@",
    "fermyon:spin/variables@",
    "spin:sqlite/sqlite@",
    "spin:postgres/postgres@3.0.0",
    "spin:postgres/postgres@4.0.0",
];

pub(super) fn link(
    linker: &Linker<InstanceState>,
    engine: &Engine,
    component: &Component,
    id: &str,
) -> Result<ProxyPre<InstanceState>> {
    let mut linker = linker.clone();
    let mut stubbed: Vec<String> = Vec::new();
    let pre = loop {
        let err = match linker.instantiate_pre(component) {
            Ok(pre) => break pre,
            Err(e) => anyhow::Error::from(e),
        };
        // An import of an interface berth does not implement at all (e.g. spin:mysql or
        // spin:redis, which a component may link but only call on some paths) would make
        // the whole component unusable; define it with trapping functions instead, so only
        // an actual call fails. A mismatch on an implemented interface stays an error.
        let missing = missing_import(&err).filter(|name| {
            !stubbed.contains(name) && !IMPLEMENTED_PREFIXES.iter().any(|p| name.starts_with(p))
        });
        let Some(name) = missing else {
            return Err(err.context(format!("component {id:?} cannot be linked")));
        };
        stub_import(&mut linker, engine, component, &name)
            .with_context(|| format!("component {id:?}: cannot stub import `{name}`"))?;
        stubbed.push(name);
    };
    if !stubbed.is_empty() {
        tracing::warn!(
            "component {id} imports {}, which berth does not implement: calls to it will trap",
            stubbed.join(", ")
        );
    }
    ProxyPre::new(pre)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "component {id:?} does not export wasi:http/incoming-handler@0.2.x; berth runs \
             wasi-http components (spin-sdk 3+)"
            )
        })
}

/// The import named by wasmtime's "component imports ... `NAME`, but a matching
/// implementation was not found" error, if its cause is a missing (not mistyped) definition.
fn missing_import(err: &anyhow::Error) -> Option<String> {
    let root = err.root_cause().to_string();
    if !root.ends_with("implementation is missing") {
        return None;
    }
    err.chain().find_map(|e| {
        let msg = e.to_string();
        let rest = msg.strip_prefix("component imports ")?;
        let (_, after) = rest.split_once('`')?;
        let (name, _) = after.split_once('`')?;
        Some(name.to_string())
    })
}

/// Marker type for resources of interfaces berth does not implement.
struct Unimplemented;

fn stub_import(
    linker: &mut Linker<InstanceState>,
    engine: &Engine,
    component: &Component,
    name: &str,
) -> Result<()> {
    use wasmtime::component::ResourceType;
    use wasmtime::component::types::ComponentItem;

    let ty = component.component_type();
    let import = ty
        .get_import(engine, name)
        .ok_or_else(|| anyhow!("no import named `{name}`"))?;
    let trap_fn = |qualified: String| {
        move |_: wasmtime::StoreContextMut<'_, InstanceState>,
              _: wasmtime::component::types::ComponentFunc,
              _: &[wasmtime::component::Val],
              _: &mut [wasmtime::component::Val]|
              -> wasmtime::Result<()> {
            wasmtime::bail!("`{qualified}` is not implemented by berth")
        }
    };
    match import.ty {
        ComponentItem::ComponentFunc(_) => {
            linker.root().func_new(name, trap_fn(name.to_string()))?;
        }
        ComponentItem::ComponentInstance(inst) => {
            let mut instance = linker.instance(name)?;
            for (export, item) in inst.exports(engine) {
                match item.ty {
                    ComponentItem::ComponentFunc(_) => {
                        instance.func_new(export, trap_fn(format!("{name}#{export}")))?;
                    }
                    ComponentItem::Resource(_) => {
                        instance.resource(
                            export,
                            ResourceType::host::<Unimplemented>(),
                            |_, _| Ok(()),
                        )?;
                    }
                    _ => {}
                }
            }
        }
        other => bail!("cannot stub a {other:?} import"),
    }
    Ok(())
}
