//! Just enough Dockerfile parsing to validate a build before anything is dispatched:
//! instructions, line continuations, comments, global `ARG`s, and each stage's `FROM`.

use std::collections::HashMap;

/// Largest Dockerfile accepted.
pub const MAX_DOCKERFILE_BYTES: usize = 32 * 1024;

const INSTRUCTIONS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];

/// One instruction, continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: String,
    pub args: String,
    /// 1-based line where it starts.
    pub line: usize,
}

/// A stage's base, as written and with global `ARG`s substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromLine {
    pub image: String,
    pub line: usize,
    /// `true` when it names an earlier stage (`FROM builder`) or `scratch`.
    pub internal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerfileError {
    #[error("the Dockerfile is empty")]
    Empty,
    #[error("the Dockerfile is larger than {MAX_DOCKERFILE_BYTES} bytes")]
    TooLarge,
    #[error("the Dockerfile contains binary data (control character at line {0}); send it as text")]
    Binary(usize),
    #[error("line {line}: unknown instruction '{keyword}'")]
    UnknownInstruction { line: usize, keyword: String },
    #[error("the Dockerfile has no FROM instruction")]
    NoFrom,
    #[error("line {0}: the first instruction must be FROM (only ARG may come before it)")]
    FromNotFirst(usize),
    #[error("line {0}: FROM needs an image")]
    EmptyFrom(usize),
    #[error("line {line}: FROM uses ${{{name}}}, which no ARG before the first FROM defines")]
    UnresolvedArg { line: usize, name: String },
}

/// Parses `text` into instructions.
pub fn parse(text: &str) -> Result<Vec<Instruction>, DockerfileError> {
    if text.len() > MAX_DOCKERFILE_BYTES {
        return Err(DockerfileError::TooLarge);
    }
    let escape = escape_directive(text);
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        if raw
            .chars()
            .any(|c| c.is_control() && c != '\t' && c != '\r')
        {
            return Err(DockerfileError::Binary(line_no));
        }
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_none()) {
            continue;
        }
        let (content, continues) = match trimmed.strip_suffix(escape) {
            Some(rest) => (rest, true),
            None => (trimmed, false),
        };
        let (start, mut joined) = pending.take().unwrap_or((line_no, String::new()));
        if !joined.is_empty() {
            joined.push(' ');
        }
        joined.push_str(content.trim());
        if continues {
            pending = Some((start, joined));
            continue;
        }
        if joined.trim().is_empty() {
            continue;
        }
        out.push(instruction(start, &joined)?);
    }
    if let Some((start, joined)) = pending
        && !joined.trim().is_empty()
    {
        out.push(instruction(start, &joined)?);
    }
    if out.is_empty() {
        return Err(DockerfileError::Empty);
    }
    Ok(out)
}

/// The `# escape=` parser directive, if the file starts with one.
fn escape_directive(text: &str) -> char {
    for line in text.lines() {
        let t = line.trim();
        let Some(directive) = t.strip_prefix('#') else {
            break;
        };
        if let Some((key, value)) = directive.split_once('=')
            && key.trim().eq_ignore_ascii_case("escape")
            && value.trim() == "`"
        {
            return '`';
        }
    }
    '\\'
}

fn instruction(line: usize, text: &str) -> Result<Instruction, DockerfileError> {
    let text = text.trim();
    let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let keyword = keyword.to_ascii_uppercase();
    if !INSTRUCTIONS.contains(&keyword.as_str()) {
        return Err(DockerfileError::UnknownInstruction { line, keyword });
    }
    Ok(Instruction {
        keyword,
        args: args.trim().to_owned(),
        line,
    })
}

/// Every stage's base image, with global `ARG` defaults substituted.
pub fn bases(instructions: &[Instruction]) -> Result<Vec<FromLine>, DockerfileError> {
    let mut global_args: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for ins in instructions {
        match ins.keyword.as_str() {
            "ARG" if out.is_empty() => {
                let (name, default) = ins.args.split_once('=').unwrap_or((ins.args.as_str(), ""));
                global_args.insert(
                    name.trim().to_owned(),
                    default.trim().trim_matches('"').to_owned(),
                );
            }
            "FROM" => {
                let mut words = ins.args.split_whitespace().filter(|w| !w.starts_with("--"));
                let image = words.next().ok_or(DockerfileError::EmptyFrom(ins.line))?;
                let image = substitute(image, &global_args, ins.line)?;
                let internal = image.eq_ignore_ascii_case("scratch")
                    || stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
                if let (Some(as_kw), Some(stage)) = (words.next(), words.next())
                    && as_kw.eq_ignore_ascii_case("as")
                {
                    stages.push(stage.to_owned());
                }
                out.push(FromLine {
                    image,
                    line: ins.line,
                    internal,
                });
            }
            _ if out.is_empty() => return Err(DockerfileError::FromNotFirst(ins.line)),
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(DockerfileError::NoFrom);
    }
    Ok(out)
}

/// Rewrites the image of the `FROM` at `line` (1-based) to `reference`, whether it was
/// written literally or through an `ARG`: what is dispatched names exactly the image berth
/// checked (a catalog name becomes the pinned reference a builder can pull).
pub fn rewrite_from(text: &str, line: usize, reference: &str) -> String {
    let mut out = String::with_capacity(text.len() + reference.len());
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let is_from = raw
            .split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("FROM"));
        if index + 1 != line || !is_from {
            out.push_str(raw);
            continue;
        }
        let mut done = false;
        for (i, word) in raw.split_inclusive(char::is_whitespace).enumerate() {
            let trimmed = word.trim_end();
            if !done && i > 0 && !trimmed.is_empty() && !trimmed.starts_with("--") {
                out.push_str(reference);
                out.push_str(&word[trimmed.len()..]);
                done = true;
            } else {
                out.push_str(word);
            }
        }
    }
    out
}

/// Images a build reads files from besides its bases: `COPY --from=<image>` and
/// `RUN --mount=…,from=<image>` that name neither an earlier stage nor a stage's index.
pub fn copy_sources(instructions: &[Instruction]) -> Vec<FromLine> {
    let mut stages: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for ins in instructions {
        let words = ins.args.split_whitespace();
        match ins.keyword.as_str() {
            "FROM" => {
                let words: Vec<&str> = words.filter(|w| !w.starts_with("--")).collect();
                if let [_, as_kw, stage, ..] = words.as_slice()
                    && as_kw.eq_ignore_ascii_case("as")
                {
                    stages.push((*stage).to_owned());
                }
            }
            "COPY" | "ADD" | "RUN" => {
                for flag in words.take_while(|w| w.starts_with("--")) {
                    let Some(image) = flag_source(flag) else {
                        continue;
                    };
                    let internal = image.chars().all(|c| c.is_ascii_digit())
                        || stages.iter().any(|s| s.eq_ignore_ascii_case(image));
                    if !internal {
                        out.push(FromLine {
                            image: image.to_owned(),
                            line: ins.line,
                            internal,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The image a `--from=` or `--mount=…,from=` flag names.
fn flag_source(flag: &str) -> Option<&str> {
    let value = match flag.strip_prefix("--from=") {
        Some(v) => v,
        None => flag
            .strip_prefix("--mount=")?
            .split(',')
            .find_map(|kv| kv.strip_prefix("from="))?,
    };
    Some(value.trim_matches('"')).filter(|v| !v.is_empty())
}

/// Rewrites every `--from=<image>` and `--mount=…,from=<image>` naming `image` to
/// `reference`.
pub fn rewrite_sources(text: &str, image: &str, reference: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_inclusive(char::is_whitespace) {
        let trimmed = word.trim_end();
        let rest = &word[trimmed.len()..];
        if trimmed.starts_with("--from=") && flag_source(trimmed) == Some(image) {
            out.push_str(&format!("--from={reference}"));
        } else if trimmed.starts_with("--mount=") && flag_source(trimmed) == Some(image) {
            let parts: Vec<String> = trimmed["--mount=".len()..]
                .split(',')
                .map(|kv| match kv.strip_prefix("from=") {
                    Some(_) => format!("from={reference}"),
                    None => kv.to_owned(),
                })
                .collect();
            out.push_str(&format!("--mount={}", parts.join(",")));
        } else {
            out.push_str(trimmed);
        }
        out.push_str(rest);
    }
    out
}

/// Replaces `$NAME`, `${NAME}` and `${NAME:-default}` with global `ARG` values.
fn substitute(
    text: &str,
    args: &HashMap<String, String>,
    line: usize,
) -> Result<String, DockerfileError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (expr, tail) = if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| DockerfileError::UnresolvedArg {
                    line,
                    name: inner.to_owned(),
                })?;
            (&inner[..end], &inner[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let (name, fallback) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match args
            .get(name)
            .filter(|v| !v.is_empty())
            .map(String::as_str)
            .or(fallback)
        {
            Some(v) => out.push_str(v),
            None => {
                return Err(DockerfileError::UnresolvedArg {
                    line,
                    name: name.to_owned(),
                });
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases_of(text: &str) -> Result<Vec<String>, DockerfileError> {
        Ok(bases(&parse(text)?)?
            .into_iter()
            .filter(|b| !b.internal)
            .map(|b| b.image)
            .collect())
    }

    #[test]
    fn the_seed_dockerfile() {
        let d = parse("FROM ubuntu20-pytorch:2.0\nRUN pip install transformers").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(
            d[1],
            Instruction {
                keyword: "RUN".into(),
                args: "pip install transformers".into(),
                line: 2
            }
        );
        assert_eq!(
            bases_of("FROM ubuntu20-pytorch:2.0\nRUN pip install transformers").unwrap(),
            ["ubuntu20-pytorch:2.0"]
        );
    }

    #[test]
    fn continuations_comments_and_case() {
        let text = "# syntax comment\nfrom --platform=linux/amd64 nvcr.io/nvidia/pytorch:24.01-py3 AS base\n\nrun apt-get update && \\\n    # inside\n    apt-get install -y git\nFROM base\nCOPY . /app";
        let d = parse(text).unwrap();
        assert_eq!(d[1].args, "apt-get update && apt-get install -y git");
        assert_eq!(d[1].line, 4);
        let b = bases(&d).unwrap();
        assert_eq!(b[0].image, "nvcr.io/nvidia/pytorch:24.01-py3");
        assert!(b[1].internal, "a stage name");
        assert_eq!(
            bases_of("FROM scratch\nCOPY x /").unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn global_args_substitute_into_from() {
        assert_eq!(
            bases_of("ARG TAG=2.0\nFROM ubuntu20-pytorch:${TAG}").unwrap(),
            ["ubuntu20-pytorch:2.0"]
        );
        assert_eq!(
            bases_of("ARG BASE\nFROM ${BASE:-ubuntu22-cuda:12.0}").unwrap(),
            ["ubuntu22-cuda:12.0"]
        );
        assert_eq!(bases_of("ARG IMG=nginx\nFROM $IMG").unwrap(), ["nginx"]);
        assert!(matches!(
            bases_of("FROM ${NOPE}"),
            Err(DockerfileError::UnresolvedArg { .. })
        ));
    }

    #[test]
    fn escape_directive() {
        assert_eq!(
            parse("# escape=`\nFROM a\nRUN one `\n two").unwrap()[1].args,
            "one two"
        );
    }

    #[test]
    fn bad_dockerfiles_say_what_is_wrong() {
        assert_eq!(parse(""), Err(DockerfileError::Empty));
        assert_eq!(parse("# only a comment\n"), Err(DockerfileError::Empty));
        assert_eq!(
            bases(&parse("RUN echo hi").unwrap()),
            Err(DockerfileError::FromNotFirst(1))
        );
        assert_eq!(
            bases(&parse("ARG X=1").unwrap()),
            Err(DockerfileError::NoFrom)
        );
        assert_eq!(
            bases(&parse("FROM").unwrap()),
            Err(DockerfileError::EmptyFrom(1))
        );
        assert!(matches!(
            parse("FROM a\nRUNN x"),
            Err(DockerfileError::UnknownInstruction { line: 2, .. })
        ));
        assert_eq!(
            parse("FROM a\nRUN \u{0}\u{1}"),
            Err(DockerfileError::Binary(2))
        );
        assert_eq!(
            parse(&"#".repeat(MAX_DOCKERFILE_BYTES + 1)),
            Err(DockerfileError::TooLarge)
        );
    }

    #[test]
    fn from_lines_are_rewritten_to_references() {
        let text = "ARG X=1\nFROM busybox:1.35 AS b\nRUN echo busybox:1.35\nFROM --platform=linux/amd64 ${BASE:-busybox:1.35}\n";
        let once = rewrite_from(text, 2, "127.0.0.1:5000/library/busybox:1.35");
        assert_eq!(
            once,
            "ARG X=1\nFROM 127.0.0.1:5000/library/busybox:1.35 AS b\nRUN echo busybox:1.35\nFROM --platform=linux/amd64 ${BASE:-busybox:1.35}\n"
        );
        // A FROM through an ARG is pinned too: the builder cannot be told another base.
        let twice = rewrite_from(&once, 4, "r/b:1@sha256:00");
        assert!(
            twice.ends_with("FROM --platform=linux/amd64 r/b:1@sha256:00\n"),
            "{twice}"
        );
        assert_eq!(rewrite_from(text, 3, "x"), text);
    }

    #[test]
    fn copy_and_mount_sources_are_found_and_rewritten() {
        let text = "FROM alpine AS build\nCOPY --from=build /a /a\nCOPY --from=0 /b /b\n\
                    COPY --chown=1 --from=evil.example/x:1 /c /c\n\
                    RUN --mount=type=bind,from=ghcr.io/y/z:2,target=/m true\nRUN echo --from=no\n";
        let found: Vec<(String, usize)> = copy_sources(&parse(text).unwrap())
            .into_iter()
            .map(|f| (f.image, f.line))
            .collect();
        assert_eq!(
            found,
            vec![
                ("evil.example/x:1".to_owned(), 4),
                ("ghcr.io/y/z:2".to_owned(), 5)
            ]
        );
        let out = rewrite_sources(text, "ghcr.io/y/z:2", "ghcr.io/y/z:2@sha256:00");
        assert!(
            out.contains("--mount=type=bind,from=ghcr.io/y/z:2@sha256:00,target=/m true"),
            "{out}"
        );
        assert!(out.contains("--from=evil.example/x:1 /c"), "{out}");
    }
}
