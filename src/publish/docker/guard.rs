//! [`ContainerGuard`]: the promise that a container imgflow creates is removed, whether the
//! operation finished, failed, timed out or its future was dropped.
//!
//! A container gets a name chosen before `docker create` runs, so even a create that was
//! interrupted half-way can be removed by that name. The normal path removes it (awaited);
//! if the guard is dropped still armed, a background thread runs `docker rm -f -v`.

use super::cli::DockerCli;
use super::error::{DockerError, Result};

/// Label put on every container imgflow creates (`check` or `export`), so that leftovers
/// of a killed imgflow can be found with `docker ps -a --filter label=imgflow.publish`.
pub const CONTAINER_LABEL: &str = "imgflow.publish";

/// Removes a named container when dropped, unless [`ContainerGuard::remove`] did.
pub struct ContainerGuard {
    cli: DockerCli,
    name: String,
    armed: bool,
}

impl ContainerGuard {
    /// Guards the container that will be called `imgflow-{role}-{random}`.
    pub fn new(cli: &DockerCli, role: &str) -> ContainerGuard {
        ContainerGuard {
            cli: cli.clone(),
            name: format!("imgflow-{role}-{}", uuid::Uuid::new_v4().simple()),
            armed: true,
        }
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Force-removes the container (and its anonymous volumes) now. A container that was
    /// never created counts as removed.
    pub async fn remove(mut self) -> Result<()> {
        match self
            .cli
            .run(&["rm", "--force", "--volumes", &self.name])
            .await
        {
            Ok(_) => {}
            Err(DockerError::CommandFailed { stderr, .. })
                if stderr.contains("No such container") => {}
            Err(other) => return Err(other),
        }
        self.armed = false;
        Ok(())
    }
}

/// Runs `work` with the name of a container it may create, then removes that container
/// whatever `work` returned (or when this future is dropped). `work`'s error comes first.
pub async fn with_container<T, Fut>(
    cli: &DockerCli,
    role: &str,
    work: impl FnOnce(String) -> Fut,
) -> Result<T>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let guard = ContainerGuard::new(cli, role);
    let outcome = work(guard.name().to_string()).await;
    let removed = guard.remove().await;
    let value = outcome?;
    removed?;
    Ok(value)
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut cmd = self
            .cli
            .std_command(&["rm", "--force", "--volumes", &self.name]);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // Never block the caller (possibly an async runtime) on the daemon.
        let spawned = std::thread::Builder::new()
            .name("imgflow-docker-rm".into())
            .spawn(move || {
                let _ = cmd.status();
            });
        if let Err(e) = spawned {
            tracing::warn!("could not remove container {}: {e}", self.name);
        }
    }
}
