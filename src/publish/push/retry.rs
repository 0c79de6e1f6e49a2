//! Retries with bounded exponential backoff and jitter, and which failures are transient.
//!
//! A transient failure is a transport error (connection refused or reset, TLS or HTTP/2
//! stream failure, timeout) or a status the registry may answer differently later: 408,
//! 429 and 5xx. Anything else (401, 403, 404 where it means "unknown", 400 ...) is final.

use super::error::PushError;
use crate::client::{ClientError, StatusCode};
use std::future::Future;
use std::time::Duration;

/// How often and how patiently a transient failure is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (the first one included) before giving up; at least 1.
    pub max_attempts: u32,
    /// Delay before the first retry; each further retry doubles it.
    pub base_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 8 attempts, 250 ms doubling up to 8 s: about 30 s of patience, enough for a
    /// registry restart.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The un-jittered delay before retry number `retry` (1 for the first retry).
    pub fn nominal_delay(&self, retry: u32) -> Duration {
        let shift = retry.saturating_sub(1).min(30);
        self.base_delay
            .saturating_mul(1u32 << shift)
            .min(self.max_delay)
    }

    /// The delay before retry number `retry`: between half and all of
    /// [`Self::nominal_delay`] ("equal jitter"), so parallel uploads that failed together
    /// do not come back together.
    pub fn delay(&self, retry: u32) -> Duration {
        let nominal = self.nominal_delay(retry);
        let half = nominal / 2;
        let spread = u64::try_from((nominal - half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(fastrand::u64(0..=spread))
    }

    /// Whether another attempt is allowed after `attempts` failed ones.
    pub fn allows(&self, attempts: u32) -> bool {
        attempts < self.max_attempts.max(1)
    }

    /// Run `op` until it succeeds, fails for good, or the attempts run out. `context`
    /// names the operation in the error.
    pub async fn run<T, F, Fut>(&self, context: &str, mut op: F) -> Result<T, PushError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if !is_transient(&e) => return Err(PushError::registry(context, e)),
                Err(e) if !self.allows(attempts) => {
                    return Err(PushError::RetriesExhausted {
                        context: context.to_string(),
                        attempts,
                        source: Box::new(e),
                    })
                }
                Err(e) => {
                    tracing::debug!("{context}: attempt {attempts} failed, retrying: {e}");
                    tokio::time::sleep(self.delay(attempts)).await;
                }
            }
        }
    }
}

/// Whether `err` may go away by trying again.
pub fn is_transient(err: &ClientError) -> bool {
    match err {
        ClientError::Http { .. } => true,
        ClientError::Status { status, .. } => is_transient_status(*status),
        _ => false,
    }
}

/// 408, 429 and every 5xx.
pub fn is_transient_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Method;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn status(code: u16) -> ClientError {
        ClientError::Status {
            method: Method::HEAD,
            url: "https://r/v2/a/blobs/sha256:00".to_string(),
            status: StatusCode::from_u16(code).unwrap(),
            errors: Vec::new(),
            body: String::new(),
        }
    }

    #[test]
    fn delays_double_up_to_the_cap_with_bounded_jitter() {
        let p = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
        };
        let nominal: Vec<u128> = (1..=5).map(|r| p.nominal_delay(r).as_millis()).collect();
        assert_eq!(nominal, [100, 200, 400, 700, 700]);
        for retry in 1..=5 {
            for _ in 0..50 {
                let d = p.delay(retry);
                let n = p.nominal_delay(retry);
                assert!(d >= n / 2 && d <= n, "retry {retry}: {d:?} vs {n:?}");
            }
        }
        assert!(p.allows(4) && !p.allows(5));
        assert_eq!(p.nominal_delay(1000), Duration::from_millis(700));
    }

    #[test]
    fn transient_failures_are_told_apart() {
        for code in [500, 502, 503, 408, 429] {
            assert!(is_transient(&status(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 416] {
            assert!(!is_transient(&status(code)), "{code}");
        }
        assert!(!is_transient(&ClientError::Setup("x".into())));
    }

    #[tokio::test]
    async fn run_retries_transient_errors_only_and_is_bounded() {
        let p = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let calls = AtomicU32::new(0);
        let ok = p
            .run("flaky", || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n < 2 {
                        Err(status(503))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(ok, 2);

        calls.store(0, Ordering::SeqCst);
        let err = p
            .run("down", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(status(502)) }
            })
            .await
            .unwrap_err();
        assert!(
            matches!(err, PushError::RetriesExhausted { attempts: 3, .. }),
            "{err}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        calls.store(0, Ordering::SeqCst);
        let err = p
            .run("denied", || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err::<(), _>(status(403)) }
            })
            .await
            .unwrap_err();
        assert!(matches!(err, PushError::Registry { .. }), "{err}");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
