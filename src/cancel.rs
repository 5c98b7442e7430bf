//! Cancelling a run from outside, as CI does it: the first SIGINT or SIGTERM stops new work,
//! lets what is in flight finish within a grace period, and ends the run with an
//! [`Error::Interrupted`] that says what the registry holds and how to continue; a second
//! signal ends the process at once.
//!
//! A [`Cancel`] is shared by everything a session does: the transfer engine asks it before
//! each blob, manifest and tag ([`Cancel::check`]), an upload before each chunk, and a request
//! in flight runs at most until the grace is over ([`Cancel::within_grace`]).

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::digest::Digest;
use crate::error::{Error, Result};

/// The grace period without `--cancel-grace` or `$HOIST_CANCEL_GRACE`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// Environment variable giving the grace period in seconds.
pub const GRACE_ENV: &str = "HOIST_CANCEL_GRACE";

/// How long past the grace CPU and file work (a build, a compression) may run before the
/// process is ended from the signal's thread.
const BACKSTOP: Duration = Duration::from_secs(2);

/// What stopped the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Stop {
    /// SIGINT (Ctrl-C): exit code 130.
    Interrupt,
    /// SIGTERM (CI cancelling a job): exit code 143.
    Terminate,
}

impl Stop {
    /// The signal's number.
    pub fn signal(self) -> i32 {
        match self {
            Stop::Interrupt => libc::SIGINT,
            Stop::Terminate => libc::SIGTERM,
        }
    }

    /// The exit code of a process ended by it, as a shell reports one: 128 + the signal.
    pub fn exit_code(self) -> u8 {
        128 + self.signal() as u8
    }

    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            Stop::Interrupt => "SIGINT",
            Stop::Terminate => "SIGTERM",
        }
    }

    fn from_signal(signal: i32) -> Stop {
        match signal {
            libc::SIGINT => Stop::Interrupt,
            _ => Stop::Terminate,
        }
    }
}

/// A blob whose upload was under way when the run stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unfinished {
    /// The blob.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Bytes of it the registry confirmed holding (the next run goes on from there).
    pub confirmed: u64,
}

/// The cancel switch of a session; clones share it.
#[derive(Clone, Debug)]
pub struct Cancel {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    token: CancellationToken,
    /// What stopped the run, and when.
    stopped: OnceLock<(Stop, Instant)>,
    grace: Duration,
}

impl Default for Cancel {
    fn default() -> Self {
        Cancel::new(DEFAULT_GRACE)
    }
}

impl Cancel {
    /// A switch not yet thrown, whose requests in flight get `grace` once it is.
    pub fn new(grace: Duration) -> Cancel {
        let inner = Inner { token: CancellationToken::new(), stopped: OnceLock::new(), grace };
        Cancel { inner: Arc::new(inner) }
    }

    /// The grace period in flight requests get.
    pub fn grace(&self) -> Duration {
        self.inner.grace
    }

    /// Stops the run: nothing new starts, what is in flight has the grace to finish. Returns
    /// whether this was the first request.
    pub fn request(&self, stop: Stop) -> bool {
        let first = self.inner.stopped.set((stop, Instant::now())).is_ok();
        self.inner.token.cancel();
        first
    }

    /// What stopped the run, once it is stopped.
    pub fn stopped(&self) -> Option<Stop> {
        self.inner.stopped.get().map(|(stop, _)| *stop)
    }

    /// `Err(Interrupted)` once the run is stopped: asked before starting anything new.
    pub fn check(&self) -> Result<()> {
        match self.stopped() {
            Some(stop) => Err(Error::Interrupted { stop, unfinished: Vec::new() }),
            None => Ok(()),
        }
    }

    /// Runs `work` (a request in flight) to its end, unless the run is stopped and the grace
    /// runs out first: then `work` is dropped and the result is `Err(Interrupted)`.
    pub async fn within_grace<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            result = work => result,
            stop = self.grace_over() => Err(Error::Interrupted { stop, unfinished: Vec::new() }),
        }
    }

    /// Resolves once the run is stopped and its grace is over, with what stopped it.
    async fn grace_over(&self) -> Stop {
        self.inner.token.cancelled().await;
        // The stop is set before the token is cancelled.
        let (stop, at) = self.inner.stopped.get().copied().unwrap_or((Stop::Terminate, Instant::now()));
        tokio::time::sleep_until((at + self.inner.grace).into()).await;
        stop
    }

    /// Throws the switch on the first SIGINT or SIGTERM, as a command-line program wants it:
    /// a second signal ends the process at once, and so does the end of the grace (plus a
    /// short backstop) when CPU or file work is still running. Listens on a thread of its own.
    pub fn on_signals(&self) -> Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
            .map_err(|e| Error::io("listen for", "SIGINT and SIGTERM", e))?;
        let cancel = self.clone();
        std::thread::Builder::new()
            .name("hoist-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let stop = Stop::from_signal(signal);
                    if !cancel.request(stop) {
                        std::process::exit(i32::from(stop.exit_code()));
                    }
                    let grace = cancel.grace();
                    std::thread::spawn(move || backstop(stop, grace));
                }
            })
            .map_err(|e| Error::io("start", "the signal listener", e))?;
        Ok(())
    }
}

/// Ends the process when the run has not ended by itself within the grace and the backstop.
fn backstop(stop: Stop, grace: Duration) {
    std::thread::sleep(grace + BACKSTOP);
    eprintln!(
        "hoist: interrupted by {}: stopped {} s after it with work in flight; nothing half-written is kept; run the \
         same command again to continue",
        stop.name(),
        (grace + BACKSTOP).as_secs()
    );
    std::process::exit(i32::from(stop.exit_code()));
}

/// The lines an interrupted run prints: one per unfinished blob, or one saying nothing was
/// half-sent.
pub fn describe(stop: Stop, unfinished: &[Unfinished]) -> String {
    if unfinished.is_empty() {
        return format!(
            "interrupted by {}: nothing is half-written and no tag moved; run the same command again to continue",
            stop.name()
        );
    }
    let lines: Vec<String> = unfinished
        .iter()
        .map(|blob| {
            format!(
                "interrupted by {}: {} of {} MiB of {} confirmed; run the same command again to continue",
                stop.name(),
                blob.confirmed >> 20,
                blob.size.div_ceil(1 << 20),
                blob.digest
            )
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_in_flight_finishes_within_the_grace_and_is_dropped_after_it() {
        let cancel = Cancel::new(Duration::from_millis(200));
        assert!(cancel.check().is_ok());
        assert!(cancel.request(Stop::Terminate));
        assert!(!cancel.request(Stop::Interrupt), "the first stop stays");
        assert_eq!(cancel.stopped(), Some(Stop::Terminate));
        assert!(matches!(cancel.check(), Err(Error::Interrupted { stop: Stop::Terminate, .. })));
        let quick = cancel.within_grace(async { Ok(7) }).await;
        assert_eq!(quick.ok(), Some(7), "work that ends within the grace keeps its result");
        let slow = cancel.within_grace(async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(8)
        });
        assert!(matches!(slow.await, Err(Error::Interrupted { .. })), "cut when the grace is over");
    }

    #[test]
    fn exit_codes_are_the_shells() {
        assert_eq!(Stop::Interrupt.exit_code(), 130);
        assert_eq!(Stop::Terminate.exit_code(), 143);
    }

    #[test]
    fn each_unfinished_blob_gets_a_line() {
        let digest = Digest::of(b"x");
        let blob = Unfinished { digest: digest.clone(), size: 286 << 20, confirmed: 175 << 20 };
        let text = describe(Stop::Terminate, &[blob.clone(), blob]);
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with(&format!("interrupted by SIGTERM: 175 of 286 MiB of {digest} confirmed;")), "{text}");
        assert!(describe(Stop::Interrupt, &[]).contains("nothing is half-written"));
    }
}
