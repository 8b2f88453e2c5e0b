//! The file `heraldctl login` writes, so later commands need no flags.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read the heraldctl config {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write the heraldctl config {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("no home directory to keep the heraldctl config in; set HERALDCTL_CONFIG")]
    NoHome,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Saved {
    pub addr: Option<String>,
    pub ingest_addr: Option<String>,
    pub token: Option<String>,
    pub tenant: Option<String>,
}

/// `HERALDCTL_CONFIG`, else `$XDG_CONFIG_HOME/heraldctl/config.json`, else
/// `~/.config/heraldctl/config.json`.
pub fn path() -> Result<PathBuf, SettingsError> {
    if let Some(path) = std::env::var_os("HERALDCTL_CONFIG") {
        return Ok(PathBuf::from(path));
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(base) => PathBuf::from(base),
        None => {
            PathBuf::from(std::env::var_os("HOME").ok_or(SettingsError::NoHome)?).join(".config")
        }
    };
    Ok(base.join("heraldctl").join("config.json"))
}

/// What was saved, or nothing when no file exists yet.
pub fn load() -> Result<Saved, SettingsError> {
    let path = path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map_err(|error| SettingsError::Read {
            path: path.display().to_string(),
            reason: error.to_string(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Saved::default()),
        Err(error) => Err(SettingsError::Read {
            path: path.display().to_string(),
            reason: error.to_string(),
        }),
    }
}

/// Writes `saved`, readable by its owner only: it holds a token.
pub fn save(saved: &Saved) -> Result<PathBuf, SettingsError> {
    let path = path()?;
    let write_error = |reason: String| SettingsError::Write {
        path: path.display().to_string(),
        reason,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|error| write_error(error.to_string()))?;
    }
    let text =
        serde_json::to_string_pretty(saved).map_err(|error| write_error(error.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .map_err(|error| write_error(error.to_string()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())
        .map_err(|error| write_error(error.to_string()))?;
    Ok(path)
}
