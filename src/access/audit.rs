//! The audit log: one JSON line per push, tag move, delete, sign-in, token and denial.
//!
//! [`AuditLog::record`] formats the line on the caller's thread (microseconds) and hands it
//! to a writer thread, so request handlers never wait on the disk. Each line is written
//! with one `write` call (files are opened for append), so lines never interleave. When the
//! last handle is dropped, or on [`AuditLog::flush`], every line recorded before has been
//! written (and a file synced): nothing is lost on a normal shutdown. Should the disk stall
//! so long that [`MAX_PENDING`] lines wait, further lines are dropped and counted rather
//! than letting memory grow.
//!
//! [`AuditEvent`] has no field that could hold a password or a token.

use super::identity::Identity;
use serde::Serialize;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Where audit lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditSink {
    /// Nowhere (`path = ""`).
    Off,
    /// Standard output (`path = "-"`).
    Stdout,
    /// A file, created if missing and appended to.
    File(PathBuf),
}

/// What an audited event was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditAction {
    /// A manifest pushed.
    Push,
    /// A tag created or moved.
    Tag,
    /// A manifest, tag or blob deleted.
    Delete,
    /// Credentials checked (Basic on a request, or at `/token`).
    Login,
    /// A token issued.
    Token,
    /// A request refused by the access policy.
    Deny,
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused by the policy.
    Denied,
    /// Failed (wrong password, error).
    Failed,
}

/// One audited event. It carries no credentials by construction: there is no field for a
/// password or token; `detail` is for short explanations such as "wrong password".
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Client address (after trusted-proxy resolution).
    pub client: IpAddr,
    /// Who acted.
    pub identity: Identity,
    /// HTTP method.
    pub method: String,
    /// What was done.
    pub action: AuditAction,
    /// Repository, if any.
    pub repository: Option<String>,
    /// Tag or digest, if any.
    pub reference: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Short explanation (never a credential).
    pub detail: Option<String>,
}

/// The JSON form of a line.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    client: IpAddr,
    identity: String,
    method: &'a str,
    action: AuditAction,
    repository: Option<&'a str>,
    reference: Option<&'a str>,
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

impl AuditEvent {
    /// The event as one JSON line (with its trailing newline), stamped `now`.
    pub fn to_line(&self, now: time::OffsetDateTime) -> String {
        let time = now
            .to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let line = Line {
            time,
            client: super::net::normalize_ip(self.client),
            identity: self.identity.to_string(),
            method: &self.method,
            action: self.action,
            repository: self.repository.as_deref(),
            reference: self.reference.as_deref(),
            outcome: self.outcome,
            detail: self.detail.as_deref(),
        };
        let mut s = serde_json::to_string(&line).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// Lines waiting for the writer beyond which new lines are dropped (and counted, with a
/// warning): ~250 bytes each, so a stalled disk holds at most ~2 MiB here, within the
/// registry's memory budget.
pub const MAX_PENDING: usize = 8192;

enum Msg {
    Line(String),
    Flush(mpsc::SyncSender<()>),
}

/// Errors opening the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened.
    #[error("cannot open audit log {path}: {source}")]
    Open {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The writer thread could not start.
    #[error("cannot start the audit writer: {0}")]
    Thread(std::io::Error),
}

/// A handle to the audit log; clones share one writer.
#[derive(Clone)]
pub struct AuditLog {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    pending: Arc<AtomicUsize>,
    dropped: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

impl AuditLog {
    /// Open `sink` (a file is created if missing, mode 0600) and start its writer.
    pub fn open(sink: &AuditSink) -> Result<AuditLog, AuditError> {
        let out = match sink {
            AuditSink::Off => return Ok(AuditLog { inner: None }),
            AuditSink::Stdout => Out::Stdout(std::io::stdout()),
            AuditSink::File(path) => {
                use std::os::unix::fs::OpenOptionsExt;
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|source| AuditError::Open {
                        path: path.clone(),
                        source,
                    })?;
                Out::File(f)
            }
        };
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name("audit".into())
            .spawn({
                let pending = pending.clone();
                move || write_loop(out, rx, &pending)
            })
            .map_err(AuditError::Thread)?;
        Ok(AuditLog {
            inner: Some(Arc::new(Inner {
                tx,
                pending,
                dropped: AtomicU64::new(0),
                thread: Some(thread),
            })),
        })
    }

    /// A log that records nothing.
    pub fn off() -> AuditLog {
        AuditLog { inner: None }
    }

    /// Record `event` now; never waits for the disk.
    pub fn record(&self, event: &AuditEvent) {
        let Some(inner) = &self.inner else { return };
        if inner.pending.load(Ordering::Relaxed) >= MAX_PENDING {
            let n = inner.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit log writer is behind; lines dropped");
            }
            return;
        }
        let line = event.to_line(time::OffsetDateTime::now_utc());
        inner.pending.fetch_add(1, Ordering::Relaxed);
        if inner.tx.send(Msg::Line(line)).is_err() {
            inner.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the writer was behind.
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.dropped.load(Ordering::Relaxed))
    }

    /// Block until every line recorded so far is written (and a file synced). Blocking:
    /// call it from `spawn_blocking` or at shutdown.
    pub fn flush(&self) {
        let Some(inner) = &self.inner else { return };
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if inner.tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Replace the sender with a dead one so the writer sees the channel close after
        // the lines already queued, then wait for it.
        self.tx = mpsc::channel().0;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread's output.
enum Out {
    Stdout(std::io::Stdout),
    File(std::fs::File),
}

impl Out {
    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        match self {
            // Stdout is line buffered: a whole line goes out at once.
            Out::Stdout(s) => s.lock().write_all(line.as_bytes()),
            // An append-mode file takes the line in one write.
            Out::File(f) => f.write_all(line.as_bytes()),
        }
    }

    fn sync(&mut self) {
        let r = match self {
            Out::Stdout(s) => s.flush(),
            Out::File(f) => f.sync_data(),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot flush the audit log");
        }
    }
}

fn write_loop(mut out: Out, rx: mpsc::Receiver<Msg>, pending: &AtomicUsize) {
    for msg in rx {
        match msg {
            Msg::Line(line) => {
                pending.fetch_sub(1, Ordering::Relaxed);
                if let Err(e) = out.write_line(&line) {
                    tracing::warn!(error = %e, "cannot write the audit log");
                }
            }
            Msg::Flush(ack) => {
                out.sync();
                let _ = ack.send(());
            }
        }
    }
    out.sync();
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
