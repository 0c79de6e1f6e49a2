//! Adding and removing htpasswd entries (`imgflow user add|del`): other lines are kept as
//! they are, and the file is replaced atomically (temporary file, fsync, rename) with mode
//! 0600.

use super::{validate_user_name, HtpasswdError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// bcrypt cost of new entries (about 50-100 ms per check on a server core).
pub const HASH_COST: u32 = 10;

/// Set `name`'s password in the file at `path` (created if missing), replacing an
/// existing entry for `name`.
pub fn add_user(path: &Path, name: &str, password: &str) -> Result<(), HtpasswdError> {
    add_user_with_cost(path, name, password, HASH_COST)
}

/// As [`add_user`] with bcrypt cost `cost` (4 to 31).
pub fn add_user_with_cost(
    path: &Path,
    name: &str,
    password: &str,
    cost: u32,
) -> Result<(), HtpasswdError> {
    validate_user_name(name)?;
    if password.is_empty() {
        return Err(HtpasswdError::BadPassword("empty"));
    }
    if password.len() > 72 {
        return Err(HtpasswdError::BadPassword(
            "longer than 72 bytes (bcrypt ignores the rest)",
        ));
    }
    let hash = bcrypt::hash(password, cost).map_err(|e| HtpasswdError::Hash(e.to_string()))?;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(HtpasswdError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let entry = format!("{name}:{hash}");
    let mut replaced = false;
    let mut lines: Vec<&str> = Vec::new();
    for l in text.lines() {
        if line_user(l) == Some(name) {
            if !replaced {
                lines.push(&entry);
                replaced = true;
            }
        } else {
            lines.push(l);
        }
    }
    if !replaced {
        lines.push(&entry);
    }
    write_atomically(path, &lines)
}

/// Remove `name` from the file at `path`; an error if it is not there.
pub fn del_user(path: &Path, name: &str) -> Result<(), HtpasswdError> {
    let text = std::fs::read_to_string(path).map_err(|source| HtpasswdError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| line_user(l) != Some(name))
        .collect();
    if lines.len() == text.lines().count() {
        return Err(HtpasswdError::NoSuchUser {
            path: path.to_path_buf(),
            name: name.to_string(),
        });
    }
    write_atomically(path, &lines)
}

/// The user of an entry line; `None` for comments and blank lines.
fn line_user(line: &str) -> Option<&str> {
    if line.starts_with('#') {
        return None;
    }
    line.split_once(':').map(|(u, _)| u)
}

fn write_atomically(path: &Path, lines: &[&str]) -> Result<(), HtpasswdError> {
    use std::os::unix::fs::OpenOptionsExt;
    let write = |source| HtpasswdError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp-{}",
        file_name.unwrap_or_else(|| "htpasswd".into()),
        std::process::id()
    ));
    let mut text = lines.join("\n");
    text.push('\n');
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        // A leftover temporary file keeps its old mode through `open`: set it.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(write)
}
