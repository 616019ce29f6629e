//! Contexts: named servers the CLI talks to instead of the embedded store.
//!
//! They live in one YAML file, `contexts.yaml` in the platform's config dir for `assay`
//! (`ASSAY_CONFIG` names another file), written atomically with mode 0600 because it holds
//! tokens. `current` is the context commands use; none (or `assay context use embedded`) means
//! the embedded store on this machine.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::UserError;

/// The name that means "no server: the embedded store on this machine".
pub const EMBEDDED: &str = "embedded";

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contexts {
    /// The context commands use unless `--context` / `ASSAY_CONTEXT` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// One server and the token to use with it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("Context")
            .field("server", &self.server)
            .field("token", &self.token.as_deref().map(fingerprint))
            .finish()
    }
}

/// Where the contexts file is: `ASSAY_CONFIG`, else `<config dir>/contexts.yaml`.
pub fn path() -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os("ASSAY_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "assay")
        .map(|d| d.config_dir().join("contexts.yaml"))
        .ok_or_else(|| {
            UserError::invalid("no config directory: this system has no home directory")
                .with_hint("set ASSAY_CONFIG to the file that should hold the contexts")
                .into()
        })
}

impl Contexts {
    /// Read the file; a missing file is no contexts.
    pub fn load(path: &Path) -> anyhow::Result<Contexts> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Contexts::default()),
            Err(e) => {
                return Err(UserError::invalid(format!(
                    "failed to read the contexts file {}: {}",
                    path.display(),
                    crate::files::io_reason(&e)
                ))
                .into());
            }
        };
        if text.trim().is_empty() {
            return Ok(Contexts::default());
        }
        serde_saphyr::from_str(&text).map_err(|e| {
            UserError::invalid(format!(
                "the contexts file {} is not valid: {e}",
                path.display()
            ))
            .with_hint("fix or delete it; `assay context add` writes it")
            .into()
        })
    }

    /// Write the file atomically (a temporary file in the same folder, then a rename), only
    /// readable by its owner.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_saphyr::to_string(self)?;
        let fail = |e: std::io::Error| {
            anyhow::Error::from(UserError::invalid(format!(
                "failed to write the contexts file {}: {}",
                path.display(),
                crate::files::io_reason(&e)
            )))
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(fail)?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "contexts.yaml".into());
        let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(e)
        })
    }
}

/// A short fingerprint of a token for listings: never the token itself.
pub fn fingerprint(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    let hex: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The context a command uses: `--context`/`ASSAY_CONTEXT` when given, else the file's
/// `current`. `None` is the embedded store.
pub fn selected(flag: Option<&str>) -> anyhow::Result<Option<(String, Context)>> {
    let file = path()?;
    let contexts = Contexts::load(&file)?;
    let name = match flag.filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => match &contexts.current {
            Some(n) => n.clone(),
            None => return Ok(None),
        },
    };
    if name == EMBEDDED {
        return Ok(None);
    }
    match contexts.contexts.get(&name) {
        Some(c) => Ok(Some((name, c.clone()))),
        None => {
            let known: Vec<&str> = contexts.contexts.keys().map(String::as_str).collect();
            Err(
                UserError::invalid(format!("no context named `{name}` in {}", file.display()))
                    .with_hint(if known.is_empty() {
                        "add one with `assay context add NAME --server URL`".to_string()
                    } else {
                        format!("known contexts: {}, and `embedded`", known.join(", "))
                    })
                    .into(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_with_owner_only_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/contexts.yaml");
        let mut c = Contexts::default();
        c.contexts.insert(
            "prod".into(),
            Context {
                server: "http://10.0.0.1:8088".into(),
                token: Some("secret".into()),
            },
        );
        c.current = Some("prod".into());
        c.save(&path).unwrap();
        assert_eq!(Contexts::load(&path).unwrap(), c);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            Contexts::load(&dir.path().join("none.yaml")).unwrap(),
            Contexts::default()
        );
    }

    #[test]
    fn fingerprints_hide_the_token() {
        let f = fingerprint("assay_abcdef");
        assert!(f.starts_with("sha256:") && f.len() == 15);
        assert!(!f.contains("abcdef"));
    }
}
