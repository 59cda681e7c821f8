//! `berth login`'s file: `<config dir>/berth/config.toml` (`$XDG_CONFIG_HOME/berth` or
//! `~/.config/berth` on Linux), mode 0600. `BERTH_URL` / `BERTH_TOKEN` override it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Failure;

#[derive(Default, Serialize, Deserialize)]
pub struct Config {
    pub url: Option<String>,
    pub token: Option<String>,
}

pub fn path() -> Result<PathBuf, Failure> {
    dirs::config_dir()
        .map(|d| d.join("berth").join("config.toml"))
        .ok_or_else(|| Failure::Usage("no config directory (set HOME or XDG_CONFIG_HOME)".into()))
}

pub fn load() -> Result<Config, Failure> {
    let p = path()?;
    match std::fs::read_to_string(&p) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| Failure::Usage(format!("{} is not valid: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(Failure::Usage(format!("cannot read {}: {e}", p.display()))),
    }
}

pub fn save(c: &Config) -> Result<PathBuf, Failure> {
    let p = path()?;
    let fail = |e: std::io::Error| Failure::Usage(format!("cannot write {}: {e}", p.display()));
    let dir = p.parent().unwrap();
    std::fs::create_dir_all(dir).map_err(fail)?;
    let text = toml::to_string(c).map_err(|e| Failure::Usage(e.to_string()))?;
    // Written to a private temporary file and renamed: the token is never readable by others,
    // even for a moment, and an existing file's looser mode does not survive.
    let tmp = dir.join(".config.toml.tmp");
    let _ = std::fs::remove_file(&tmp);
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(fail)?;
        f.write_all(text.as_bytes()).map_err(fail)?;
        f.sync_all().map_err(fail)?;
    }
    std::fs::rename(&tmp, &p).map_err(fail)?;
    Ok(p)
}

/// URL and token: the environment first, then the saved login.
pub fn resolve() -> Result<(String, String), Failure> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let saved = load()?;
    let url = env("BERTH_URL").or(saved.url).ok_or_else(|| {
        Failure::Auth("not logged in: run `berth login URL --token T` or set BERTH_URL".into())
    })?;
    let token = env("BERTH_TOKEN").or(saved.token).ok_or_else(|| {
        Failure::Auth("no token: run `berth login URL --token T` or set BERTH_TOKEN".into())
    })?;
    Ok((url, token))
}
