//! Secrets a process needs at start: taken from configuration, or for a
//! local run generated once into the state directory and reused.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::Context;

/// Where a credential came from, for the start-up log.
#[derive(Debug)]
pub enum Source {
    Configured,
    File(PathBuf),
    Generated(PathBuf),
}

/// The configured value, else the one in `state_dir/file_name`, else a new
/// one from `generate`, written there readable by the owner only.
pub fn resolve(
    configured: Option<&str>,
    state_dir: &Path,
    file_name: &str,
    what: &str,
    generate: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<(String, Source)> {
    if let Some(value) = configured.map(str::trim).filter(|value| !value.is_empty()) {
        return Ok((value.to_owned(), Source::Configured));
    }
    let path = state_dir.join(file_name);
    match fs::read_to_string(&path) {
        Ok(value) if !value.trim().is_empty() => {
            return Ok((value.trim().to_owned(), Source::File(path)));
        }
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error)
                .with_context(|| format!("cannot read the {what} from {}", path.display()));
        }
    }
    let value = generate()?;
    fs::create_dir_all(state_dir).with_context(|| {
        format!(
            "cannot create the state directory {} for the {what}",
            state_dir.display()
        )
    })?;
    write_private(&path, &value)
        .with_context(|| format!("cannot write the {what} to {}", path.display()))?;
    Ok((value, Source::Generated(path)))
}

fn write_private(path: &Path, value: &str) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(value.as_bytes())?;
    file.write_all(b"\n")
}

/// `hrld_admin_` or `hrld_svc_` and 32 random bytes, base64url.
pub fn generate_token(kind: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("the OS random generator failed: {error}"))?;
    Ok(format!(
        "hrld_{kind}_{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_then_file_then_generated() {
        let dir = tempfile::tempdir().unwrap();
        let (value, source) =
            resolve(Some("set"), dir.path(), "t", "token", || unreachable!()).unwrap();
        assert_eq!(value, "set");
        assert!(matches!(source, Source::Configured));
        let (generated, source) =
            resolve(None, dir.path(), "t", "token", || Ok("new".to_owned())).unwrap();
        assert_eq!(generated, "new");
        assert!(matches!(source, Source::Generated(_)));
        let (again, source) = resolve(None, dir.path(), "t", "token", || unreachable!()).unwrap();
        assert_eq!(again, "new");
        assert!(matches!(source, Source::File(_)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join("t"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
