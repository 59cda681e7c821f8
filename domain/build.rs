//! Compact copies of the text every component embeds, so that the sources can stay
//! commented and readable while the `.wasm` files stay small:
//! - `docs/openapi.json`, pretty-printed for readable diffs, without the whitespace between
//!   tokens (less than half the bytes). A unit test checks that both parse to the same value.
//! - `migrations/*/*.sql` without comments, indentation and blank lines (every component
//!   embeds both dialects' migrations; SQLite also keeps a table's text in its schema).

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).to_owned();

    let openapi = root.join("docs/openapi.json");
    println!("cargo::rerun-if-changed={}", openapi.display());
    let pretty = std::fs::read_to_string(&openapi).expect("docs/openapi.json is readable");
    std::fs::write(out.join("openapi.min.json"), minify_json(&pretty)).unwrap();

    for dialect in ["sqlite", "postgres"] {
        let dir = root.join("migrations").join(dialect);
        println!("cargo::rerun-if-changed={}", dir.display());
        std::fs::create_dir_all(out.join("migrations").join(dialect)).unwrap();
        for entry in std::fs::read_dir(&dir).expect("migrations/ is readable") {
            let path = entry.unwrap().path();
            let sql = std::fs::read_to_string(&path).unwrap();
            let target = out
                .join("migrations")
                .join(dialect)
                .join(path.file_name().unwrap());
            std::fs::write(target, minify_sql(&sql)).unwrap();
        }
    }
}

/// SQL without `--` comments, indentation, runs of blanks, trailing blanks and blank lines.
/// The same quoting rules as `migrations::split_statements`: nothing changes inside a `'…'`
/// literal, and `--` inside a PostgreSQL `$$` body is kept (only its blanks shrink).
fn minify_sql(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(sql.len());
    let (mut in_quote, mut in_dollar, mut line_start) = (false, false, true);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !in_quote {
            // Indentation goes; any other run of blanks becomes one space.
            if b == b' ' || b == b'\t' {
                if !line_start && out.last() != Some(&b' ') {
                    out.push(b' ');
                }
                i += 1;
                continue;
            }
            if !in_dollar && b == b'-' && bytes.get(i + 1) == Some(&b'-') {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            if b == b'\n' {
                if out.last() == Some(&b' ') {
                    out.pop();
                }
                if out.last().is_some_and(|c| *c != b'\n') {
                    out.push(b'\n');
                }
                line_start = true;
                i += 1;
                continue;
            }
        }
        line_start = false;
        match b {
            b'$' if !in_quote
                && bytes.get(i + 1) == Some(&b'$')
                && bytes.get(i.wrapping_sub(1)) != Some(&b'$') =>
            {
                in_dollar = !in_dollar
            }
            b'\'' if !in_dollar => in_quote = !in_quote,
            _ => {}
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8(out).expect("only ASCII was removed")
}

/// JSON without the whitespace outside strings (inside them it is kept, escapes included).
fn minify_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
        } else if !c.is_ascii_whitespace() {
            in_string = c == '"';
            out.push(c);
        }
    }
    out
}
