//! Docker credential helpers: `docker-credential-NAME get`, the registry on stdin, the
//! answer `{"ServerURL","Username","Secret"}` on stdout.

use super::credentials::Credentials;
use super::error::CredentialsError;
use serde::Deserialize;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The user name by which a helper says its secret is an identity token.
const IDENTITY_TOKEN_USER: &str = "<token>";

/// What helpers print when they hold nothing for the registry (docker treats it as "no
/// credentials", not as an error).
const NOT_FOUND: &str = "credentials not found";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    #[serde(default)]
    username: String,
    #[serde(default)]
    secret: String,
}

/// The executable `program` in the `:`-separated directories of `search_path`.
pub(crate) fn find_program(program: &str, search_path: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(search_path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Ask helper `name` for the credentials of `host`, finding it in `search_path` (also
/// passed to it as its `PATH`).
pub(crate) fn run_helper(
    name: &str,
    host: &str,
    search_path: &OsStr,
) -> Result<Option<Credentials>, CredentialsError> {
    let helper = format!("docker-credential-{name}");
    let program =
        find_program(&helper, search_path).ok_or_else(|| CredentialsError::HelperNotInstalled {
            helper: helper.clone(),
            host: host.to_string(),
            search_path: search_path.to_string_lossy().into_owned(),
        })?;
    let failed = |reason: String| CredentialsError::HelperFailed {
        helper: helper.clone(),
        host: host.to_string(),
        reason,
    };
    let output = spawn_get(&program, host, search_path)
        .map_err(|e| failed(format!("cannot run {}: {e}", program.display())))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said = format!("{} {}", stdout.trim(), stderr.trim());
        if said.to_ascii_lowercase().contains(NOT_FOUND) {
            return Ok(None);
        }
        return Err(failed(format!("{}: {}", output.status, said.trim())));
    }
    let answer: HelperAnswer = serde_json::from_str(stdout.trim())
        .map_err(|e| failed(format!("its answer is not the expected JSON: {e}")))?;
    Ok(match (answer.username, answer.secret) {
        (_, secret) if secret.is_empty() => None,
        (user, token) if user == IDENTITY_TOKEN_USER => Some(Credentials::IdentityToken {
            username: String::new(),
            token,
        }),
        (username, password) => Some(Credentials::Basic { username, password }),
    })
}

/// Run `program get` with `host` on stdin and wait for it.
fn spawn_get(
    program: &Path,
    host: &str,
    search_path: &OsStr,
) -> std::io::Result<std::process::Output> {
    let mut child = Command::new(program)
        .arg("get")
        .env("PATH", OsString::from(search_path))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe: not an error here, its
        // exit status tells.
        let _ = stdin.write_all(host.as_bytes());
    }
    child.wait_with_output()
}
