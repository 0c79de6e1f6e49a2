//! Users from an htpasswd file (`name:hash` lines, bcrypt `$2y$`/`$2b$`/`$2a$` only; blank
//! lines and `#` comments are allowed) and password checks.
//!
//! A bcrypt check costs tens of milliseconds of CPU by design, and curl or skopeo send
//! Basic credentials on every request: successful checks are remembered for
//! [`cache::TTL`] in a bounded cache keyed by a keyed hash (HMAC with a per-process random
//! key) of the file's generation, the user and the password, never the password itself.
//! A reload forgets them. A missing user still costs one bcrypt check (against another
//! user's hash), so timing does not tell which users exist; bcrypt compares in constant
//! time. [`Htpasswd::verify`] blocks: call it from `spawn_blocking`.

mod cache;
mod edit;

pub use edit::{add_user, add_user_with_cost, del_user, HASH_COST};

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

/// htpasswd errors; those about the file's content name the file and line.
#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    /// The file could not be read.
    #[error("cannot read htpasswd file {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("cannot write htpasswd file {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is not `name:hash`.
    #[error("{}:{line}: not a `name:hash` line", .path.display())]
    Malformed {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// A hash is not bcrypt.
    #[error("{}:{line}: the hash of user {user:?} is not bcrypt ($2y$, $2b$ or $2a$); create it with `imgflow user add` or `htpasswd -B`", .path.display())]
    NotBcrypt {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The user.
        user: String,
    },
    /// A user appears twice.
    #[error("{}:{line}: user {user:?} appears a second time", .path.display())]
    Duplicate {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The user.
        user: String,
    },
    /// A user name is not allowed.
    #[error("{}invalid user name {name:?}: {reason}", .at.as_ref().map(|(p, l)| format!("{}:{l}: ", p.display())).unwrap_or_default())]
    BadName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
        /// File and line, when read from a file.
        at: Option<(PathBuf, usize)>,
    },
    /// `del` of a user the file does not have.
    #[error("no user {name:?} in {}", .path.display())]
    NoSuchUser {
        /// File.
        path: PathBuf,
        /// The user.
        name: String,
    },
    /// The password cannot be used.
    #[error("unusable password: {0}")]
    BadPassword(&'static str),
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Check a user name: not empty, not `anonymous`, no `:`, whitespace or control characters.
pub fn validate_user_name(name: &str) -> Result<(), HtpasswdError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name == super::identity::ANONYMOUS {
        Some("`anonymous` is reserved for requests without credentials")
    } else if name.contains(':') {
        Some("contains `:`")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or control characters")
    } else if name.starts_with('@') || name == "*" || name.starts_with('#') {
        Some("`@`, `#` and `*` have other meanings")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(HtpasswdError::BadName {
            name: name.to_string(),
            reason,
            at: None,
        }),
    }
}

/// Parse htpasswd text (of `path`, for errors) into `(user, hash)` pairs in file order.
pub fn parse(text: &str, path: &Path) -> Result<Vec<(String, String)>, HtpasswdError> {
    let mut users: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end_matches('\r');
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        let Some((name, hash)) = l.split_once(':') else {
            return Err(HtpasswdError::Malformed {
                path: path.to_path_buf(),
                line,
            });
        };
        if let Err(HtpasswdError::BadName { name, reason, .. }) = validate_user_name(name) {
            let at = Some((path.to_path_buf(), line));
            return Err(HtpasswdError::BadName { name, reason, at });
        }
        if !is_bcrypt(hash) {
            return Err(HtpasswdError::NotBcrypt {
                path: path.to_path_buf(),
                line,
                user: name.to_string(),
            });
        }
        if users.iter().any(|(u, _)| u == name) {
            return Err(HtpasswdError::Duplicate {
                path: path.to_path_buf(),
                line,
                user: name.to_string(),
            });
        }
        users.push((name.to_string(), hash.to_string()));
    }
    Ok(users)
}

fn is_bcrypt(hash: &str) -> bool {
    use std::str::FromStr;
    ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p))
        && bcrypt::HashParts::from_str(hash).is_ok()
}

/// What identifies one version of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

struct State {
    users: HashMap<String, String>,
    /// A hash to spend a check on when the user is missing.
    decoy: Option<String>,
    stamp: Stamp,
    generation: u64,
}

/// The outcome of [`Htpasswd::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Right, checked with bcrypt just now.
    Verified,
    /// Right, as checked recently (no bcrypt run).
    Remembered,
    /// Wrong password or unknown user.
    Wrong,
}

/// The users of an htpasswd file, reloadable.
pub struct Htpasswd {
    path: PathBuf,
    state: RwLock<State>,
    cache: cache::VerifyCache,
}

impl std::fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Htpasswd")
            .field("path", &self.path)
            .field("users", &self.len())
            .finish()
    }
}

impl Htpasswd {
    /// Load `path`.
    pub fn load(path: &Path) -> Result<Htpasswd, HtpasswdError> {
        let state = read_state(path, 0)?;
        Ok(Htpasswd {
            path: path.to_path_buf(),
            state: RwLock::new(state),
            cache: cache::VerifyCache::new(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many users there are.
    pub fn len(&self) -> usize {
        self.read().users.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `name` is a user.
    pub fn contains(&self, name: &str) -> bool {
        self.read().users.contains_key(name)
    }

    /// Whether `password` is `name`'s. Blocking (one bcrypt check unless a recent success
    /// is remembered): call it from `spawn_blocking`.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        self.check(name, password) != PasswordCheck::Wrong
    }

    /// Whether `password` is `name`'s as checked recently: no bcrypt run, so callable
    /// from async code (the fast path of [`Htpasswd::check`]).
    pub fn remembered(&self, name: &str, password: &str) -> bool {
        let generation = {
            let s = self.read();
            if !s.users.contains_key(name) {
                return false;
            }
            s.generation
        };
        self.cache.hit(&self.cache.key(generation, name, password))
    }

    /// As [`Htpasswd::verify`], saying whether bcrypt ran or a recent success was
    /// remembered (the audit log records real checks, not every request of a client
    /// that sends its password each time).
    pub fn check(&self, name: &str, password: &str) -> PasswordCheck {
        let (hash, generation) = {
            let s = self.read();
            match s.users.get(name) {
                Some(h) => (Ok(h.clone()), s.generation),
                None => (Err(s.decoy.clone()), s.generation),
            }
        };
        match hash {
            Err(decoy) => {
                if let Some(d) = decoy {
                    let _ = bcrypt::verify(password, &d);
                }
                PasswordCheck::Wrong
            }
            Ok(hash) => {
                let key = self.cache.key(generation, name, password);
                if self.cache.hit(&key) {
                    return PasswordCheck::Remembered;
                }
                if bcrypt::verify(password, &hash).unwrap_or(false) {
                    self.cache.insert(key);
                    PasswordCheck::Verified
                } else {
                    PasswordCheck::Wrong
                }
            }
        }
    }

    /// Re-read the file if it changed (modification time, size or inode); `Ok(true)` when
    /// it was reloaded. On error the users loaded before stay.
    pub fn reload_if_changed(&self) -> Result<bool, HtpasswdError> {
        let now = stamp(&self.path).map_err(|source| HtpasswdError::Read {
            path: self.path.clone(),
            source,
        })?;
        let (old, generation) = {
            let s = self.read();
            (s.stamp, s.generation)
        };
        if now == old {
            return Ok(false);
        }
        let fresh = read_state(&self.path, generation + 1)?;
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.cache.clear();
        Ok(true)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn read_state(path: &Path, generation: u64) -> Result<State, HtpasswdError> {
    let read = |source| HtpasswdError::Read {
        path: path.to_path_buf(),
        source,
    };
    let before = stamp(path).map_err(read)?;
    let text = std::fs::read_to_string(path).map_err(read)?;
    let users = parse(&text, path)?;
    Ok(State {
        decoy: users.first().map(|(_, h)| h.clone()),
        users: users.into_iter().collect(),
        stamp: before,
        generation,
    })
}

#[cfg(test)]
#[path = "htpasswd_tests.rs"]
mod tests;
