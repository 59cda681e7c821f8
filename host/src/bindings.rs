//! Host bindings for the Spin interfaces berth implements, generated from the WIT in `/wit`.

wasmtime::component::bindgen!({
    path: [
        "../wit/spin@2.0.0",
        "../wit/spin-sqlite@3.0.0",
        "../wit/spin-postgres@3.0.0",
        "../wit/spin-postgres@4.0.0",
    ],
    inline: "
        package berth:host;

        world spin-apis {
            import fermyon:spin/sqlite@2.0.0;
            import fermyon:spin/key-value@2.0.0;
            import fermyon:spin/variables@2.0.0;
            import spin:sqlite/sqlite@3.0.0;
            import spin:postgres/postgres@3.0.0;
            import spin:postgres/postgres@4.0.0;
        }
    ",
    with: {
        // Both SQLite interface versions share one connection type and one table.
        "fermyon:spin/sqlite.connection": crate::interfaces::sqlite::Connection,
        "spin:sqlite/sqlite.connection": crate::interfaces::sqlite::Connection,
        "fermyon:spin/key-value.store": crate::interfaces::key_value::Store,
        // Both PostgreSQL interface versions share one connection type and one pool.
        "spin:postgres/postgres@3.0.0.connection": crate::interfaces::postgres::Connection,
        "spin:postgres/postgres@4.0.0.connection": crate::interfaces::postgres::Connection,
    },
    // Resource-table lookups can fail; such failures trap instead of reaching the guest.
    // PostgreSQL is network I/O: async host functions.
    imports: {
        "spin:postgres/postgres": async | trappable,
        default: trappable,
    },
});
