//! The retry policy: which failures are worth another try, and how long to wait.
//!
//! The push engine retries each operation (one blob upload, one manifest PUT) as a whole, in
//! this one place; nothing below it retries.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::error::RegistryError;
use crate::error::{Error, Result};

/// How often and how patiently to retry.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub first_wait: Duration,
    /// No wait is longer than this, Retry-After included.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { retries: 6, first_wait: Duration::from_secs(1), max_wait: Duration::from_secs(30) }
    }
}

/// Whether `error` may go away by itself: connection trouble, timeouts, stalls, 408, 429, 500,
/// 502, 503, 504. Everything else (400, 401 after re-authentication, 403, 404, bad input,
/// digest mismatches) is permanent.
pub fn is_transient(error: &Error) -> bool {
    match error {
        Error::Registry(e) => match e {
            RegistryError::Connect { .. }
            | RegistryError::Timeout { .. }
            | RegistryError::Stalled { .. }
            | RegistryError::NoProgress { .. }
            | RegistryError::TooManyRequests { .. } => true,
            RegistryError::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            _ => false,
        },
        _ => false,
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> RetryPolicy {
        RetryPolicy { retries: 0, ..RetryPolicy::default() }
    }

    /// The wait before retry number `attempt` (0-based) after `error`: the registry's
    /// Retry-After when it gave one, else exponential backoff with jitter; capped.
    pub fn wait(&self, attempt: u32, error: &Error) -> Duration {
        if let Error::Registry(RegistryError::TooManyRequests { retry_after: Some(seconds), .. }) = error {
            return Duration::from_secs(*seconds).min(self.max_wait);
        }
        let backoff = self.first_wait.saturating_mul(2u32.saturating_pow(attempt)).min(self.max_wait);
        // Full jitter between half and all of the backoff, so that parallel uploads spread out.
        backoff.mul_f64(0.5 + 0.5 * jitter())
    }

    /// Runs `operation` until it succeeds, fails permanently, or the retries run out; counts
    /// retries in `retries`.
    pub async fn run<T, F, Fut>(&self, what: &str, retries: &AtomicU32, mut operation: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match operation().await {
                Ok(value) => return Ok(value),
                Err(error) => {
                    attempt = self.next_attempt(what, attempt, error, retries).await?;
                }
            }
        }
    }

    /// After a failed attempt: waits and returns the next attempt number, or the error to give
    /// up with.
    pub async fn next_attempt(&self, what: &str, attempt: u32, error: Error, retries: &AtomicU32) -> Result<u32> {
        if !is_transient(&error) || self.retries == 0 {
            return Err(error);
        }
        if attempt >= self.retries {
            return Err(Error::RetriesExhausted {
                what: what.to_owned(),
                attempts: attempt + 1,
                last: Box::new(error),
            });
        }
        let wait = self.wait(attempt, &error);
        tracing::warn!("{what}: {error}; retrying in {:.1} s", wait.as_secs_f64());
        retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(wait).await;
        Ok(attempt + 1)
    }
}

/// A number in [0, 1) that differs from call to call (no need for a seeded generator here).
pub(crate) fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Error {
        RegistryError::Status { registry: "r".into(), status: code, request: "x".into(), message: String::new() }.into()
    }

    #[test]
    fn transient_and_permanent_statuses() {
        for code in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient(&status(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 405, 501] {
            assert!(!is_transient(&status(code)), "{code}");
        }
        let unauthorized: Error =
            RegistryError::Unauthorized { registry: "r".into(), scope: "s".into(), message: "m".into() }.into();
        assert!(!is_transient(&unauthorized));
        assert!(is_transient(&RegistryError::Connect { registry: "r".into(), detail: "reset".into() }.into()));
    }

    #[test]
    fn waits_grow_with_jitter_and_honour_retry_after_within_the_cap() {
        let policy = RetryPolicy::default();
        let error = status(503);
        for attempt in 0..8 {
            let wait = policy.wait(attempt, &error);
            let full = Duration::from_secs(1 << attempt.min(5)).min(policy.max_wait);
            assert!(wait >= full / 2 && wait <= full, "attempt {attempt}: {wait:?}");
        }
        let limited: Error =
            RegistryError::TooManyRequests { registry: "r".into(), retry_after: Some(7), message: String::new() }
                .into();
        assert_eq!(policy.wait(0, &limited), Duration::from_secs(7));
        let long: Error =
            RegistryError::TooManyRequests { registry: "r".into(), retry_after: Some(3600), message: String::new() }
                .into();
        assert_eq!(policy.wait(0, &long), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_transient_failures_then_gives_up() {
        let policy = RetryPolicy { retries: 2, ..RetryPolicy::default() };
        let retries = AtomicU32::new(0);
        let mut calls = 0;
        let result: Result<()> = policy
            .run("op", &retries, || {
                calls += 1;
                async { Err(status(503)) }
            })
            .await;
        assert!(matches!(result, Err(Error::RetriesExhausted { attempts: 3, .. })));
        assert_eq!((calls, retries.load(Ordering::Relaxed)), (3, 2));
        let mut calls = 0;
        let result: Result<()> = policy
            .run("op", &retries, || {
                calls += 1;
                async { Err(status(404)) }
            })
            .await;
        assert!(matches!(result, Err(Error::Registry(RegistryError::Status { status: 404, .. }))));
        assert_eq!(calls, 1, "permanent failures are not retried");
    }
}
