//! Secrets at rest: hook secrets are sealed with ChaCha20-Poly1305 under a key kept in
//! `<data-dir>/secret.key` (32 random bytes, mode 0600, made on first open), so a copy of the
//! database alone does not give them away. A sealed value is `enc:v1:` + base64 of nonce and
//! ciphertext; a value without the prefix is clear text from before (sealed on open).
//!
//! Also the data directory's permissions: it is made 0700 and the SQLite file 0600; wider
//! modes found on open are narrowed, with a warning.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::error::{Result, StoreError};

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "secret.key";
const PREFIX: &str = "enc:v1:";
const KEY_LEN: usize = 32;

/// Seals and opens secrets with the data directory's key.
pub(crate) struct SecretBox {
    key: LessSafeKey,
}

impl SecretBox {
    /// Read `<data_dir>/secret.key`, or make it (0600) when there is none.
    pub(crate) fn open(data_dir: &Path, warnings: &mut Vec<String>) -> Result<SecretBox> {
        let path = data_dir.join(KEY_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => {
                narrow(&path, 0o600, warnings)?;
                b
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(&path)?,
            Err(e) => return Err(StoreError::io("read the secret key", &path, e)),
        };
        if bytes.len() != KEY_LEN {
            return Err(StoreError::Config(format!(
                "the secret key {} is not {KEY_LEN} bytes; restore it from a backup (without it \
                 the stored hook secrets cannot be read)",
                path.display()
            )));
        }
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes).map_err(|_| {
            StoreError::Config(format!("the secret key {} is unusable", path.display()))
        })?;
        Ok(SecretBox {
            key: LessSafeKey::new(key),
        })
    }

    pub(crate) fn seal(&self, plain: &str) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce)
            .map_err(|_| StoreError::Invalid("no randomness for a nonce".into()))?;
        let mut data = plain.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .map_err(|_| StoreError::Invalid("sealing a secret failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// The clear text of a stored value (clear text from before sealing is returned as is).
    pub(crate) fn open_text(&self, stored: &str) -> Result<String> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let unreadable = || {
            StoreError::Config(
                "a stored secret does not open with this data directory's secret.key (was the \
                 key replaced?)"
                    .into(),
            )
        };
        let mut raw = STANDARD.decode(encoded).map_err(|_| unreadable())?;
        if raw.len() < NONCE_LEN {
            return Err(unreadable());
        }
        let mut data = raw.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&raw).map_err(|_| unreadable())?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut data)
            .map_err(|_| unreadable())?;
        String::from_utf8(plain.to_vec()).map_err(|_| unreadable())
    }

    pub(crate) fn is_sealed(stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }
}

/// Make the key file, or read the one another process made at the same moment (two `assay`
/// commands opening a new data directory at once): the key is written whole to a file of this
/// process's own and then linked to `secret.key`, which either wins or finds the other's key —
/// never a half-written one.
fn create_key(path: &Path) -> Result<Vec<u8>> {
    let mut key = vec![0u8; KEY_LEN];
    aws_lc_rs::rand::fill(&mut key)
        .map_err(|_| StoreError::Invalid("no randomness for the secret key".into()))?;
    let mut tag = [0u8; 8];
    aws_lc_rs::rand::fill(&mut tag)
        .map_err(|_| StoreError::Invalid("no randomness for the secret key".into()))?;
    let name = format!(
        ".{KEY_FILE}.{}.{}",
        std::process::id(),
        tag.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let own = path.with_file_name(name);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&own)
        .and_then(|mut file| file.write_all(&key).and_then(|()| file.sync_all()));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&own);
        return Err(StoreError::io("write the secret key", &own, e));
    }
    let linked = std::fs::hard_link(&own, path);
    let _ = std::fs::remove_file(&own);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read(path).map_err(|e| StoreError::io("read the secret key", path, e))
        }
        Err(e) => Err(StoreError::io("create the secret key", path, e)),
    }
}

/// Make `path` (when it exists) no wider than `mode`, with a warning when it was.
pub(crate) fn narrow(path: &Path, mode: u32, warnings: &mut Vec<String>) -> Result<()> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let current = meta.permissions().mode() & 0o777;
    if current & !mode != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| StoreError::io("restrict the permissions of", path, e))?;
        warnings.push(format!(
            "{} was mode {current:o}, readable by other users; changed it to {mode:o}",
            path.display()
        ));
    }
    Ok(())
}

/// Create the data directory 0700, or narrow an existing one.
pub(crate) fn private_dir(dir: &Path, warnings: &mut Vec<String>) -> Result<()> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StoreError::io("create the data dir", dir, e))?;
        return Ok(());
    }
    narrow(dir, 0o700, warnings)
}

/// Create `path` empty with mode 0600 when it does not exist (an existing one is left as is).
pub(crate) fn create_private_file(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::io("create the database file", path, e)),
    }
}

/// The SQLite file and its journal files.
pub(crate) fn sqlite_files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    };
    [db.to_path_buf(), with("-wal"), with("-shm")]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several processes opening a new data directory at once all get the one key.
    #[test]
    fn stores_opening_a_new_data_dir_at_once_share_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let keys: Vec<Vec<u8>> = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        let path = dir.path().join(KEY_FILE);
                        scope.spawn(move || match std::fs::read(&path) {
                            Ok(bytes) => bytes,
                            Err(_) => create_key(&path).unwrap(),
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let on_disk = std::fs::read(dir.path().join(KEY_FILE)).unwrap();
            assert_eq!(on_disk.len(), KEY_LEN);
            assert!(
                keys.iter().all(|k| *k == on_disk),
                "every opener uses the key on disk"
            );
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(left.len(), 1, "no temporary key file is left behind");
        }
    }
}
