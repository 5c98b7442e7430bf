//! The one read-merge-write-settle-read-back loop, for documents that several writers amend
//! at once in a registry: an index under a tag (`hoist index add`, `remove`, `create`) and the
//! referrers fallback index `sha256-<hex>`.
//!
//! Registries have no compare-and-swap, so a write can silently replace another writer's: each
//! round reads what is there, merges the change in and writes; then waits a moment (the
//! settle, with jitter) and reads back. If another writer's document replaced ours without our
//! change, the next round merges onto it. At most `tries` rounds, then
//! [`Error::Contention`](crate::Error::Contention).

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// What a round's write did.
pub(crate) enum Round<W, D> {
    /// Wrote; `W` is what the read-back checks.
    Written(W),
    /// The amend is over without a read-back (nothing needed writing, or no tag to check).
    Done(D),
}

/// One amend: how a round reads, merges and writes, and how a read-back tells that the change
/// is in place.
pub(crate) trait Amend {
    /// What a write leaves for its read-back.
    type Written;
    /// What the amend gives back when it is done.
    type Done;

    /// Reads what is there now, merges the change into it and writes the result.
    async fn write(&mut self) -> Result<Round<Self::Written, Self::Done>>;

    /// Reads back after the settle: `Some` when the change is there, `None` when another
    /// writer replaced it.
    async fn check(&mut self, written: Self::Written) -> Result<Option<Self::Done>>;
}

/// Runs `amend` for at most `tries` rounds. Each write is read back after `settle` (`None`:
/// [`settle_for`] the round's measured read-merge-write time), lengthened by up to as much
/// again at random so that competing writers drift apart. `what` names the document in
/// messages.
pub(crate) async fn run<A: Amend>(amend: &mut A, what: &str, tries: u32, settle: Option<Duration>) -> Result<A::Done> {
    for attempt in 0..tries.max(1) {
        let started = Instant::now();
        let written = match amend.write().await? {
            Round::Written(written) => written,
            Round::Done(done) => return Ok(done),
        };
        let settle = settle.unwrap_or_else(|| settle_for(started.elapsed()));
        tokio::time::sleep(settle.mul_f64(1.0 + crate::registry::retry::jitter())).await;
        if let Some(done) = amend.check(written).await? {
            return Ok(done);
        }
        tracing::warn!("another writer replaced {what} (try {}); merging again", attempt + 1);
    }
    Err(Error::Contention { what: what.to_owned(), tries })
}

/// The wait before reading a write back, from how long its read-merge-write took: another
/// writer that read before our write lands its write within about its own read-merge-write
/// time, so waiting a few times ours (floor 200 ms, cap 1.5 s) sees it, and then the amend
/// merges again.
pub(crate) fn settle_for(read_merge_write: Duration) -> Duration {
    read_merge_write.saturating_mul(4).clamp(Duration::from_millis(200), Duration::from_millis(1500))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document that other writers replace `lost` times before a write of ours sticks.
    struct Contested {
        lost: u32,
        writes: u32,
        nothing_to_do: bool,
    }

    impl Amend for Contested {
        type Written = u32;
        type Done = u32;

        async fn write(&mut self) -> Result<Round<u32, u32>> {
            if self.nothing_to_do {
                return Ok(Round::Done(0));
            }
            self.writes += 1;
            Ok(Round::Written(self.writes))
        }

        async fn check(&mut self, written: u32) -> Result<Option<u32>> {
            Ok((written > self.lost).then_some(written))
        }
    }

    fn run_blocking(amend: &mut Contested, tries: u32) -> Result<u32> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        runtime.block_on(run(amend, "team/app:1", tries, Some(Duration::from_millis(10))))
    }

    #[test]
    fn a_replaced_write_is_merged_again_until_it_sticks() {
        let mut amend = Contested { lost: 2, writes: 0, nothing_to_do: false };
        assert_eq!(run_blocking(&mut amend, 10).unwrap(), 3);
        assert_eq!(amend.writes, 3);
    }

    #[test]
    fn the_rounds_are_bounded() {
        let mut amend = Contested { lost: u32::MAX, writes: 0, nothing_to_do: false };
        let error = run_blocking(&mut amend, 4).unwrap_err();
        assert!(matches!(error, Error::Contention { ref what, tries: 4 } if what == "team/app:1"), "{error}");
        assert_eq!(amend.writes, 4);
    }

    #[test]
    fn nothing_to_write_ends_without_a_read_back() {
        let mut amend = Contested { lost: u32::MAX, writes: 0, nothing_to_do: true };
        assert_eq!(run_blocking(&mut amend, 10).unwrap(), 0);
    }

    #[test]
    fn the_settle_grows_with_the_round_within_bounds() {
        assert_eq!(settle_for(Duration::from_millis(10)), Duration::from_millis(200));
        assert_eq!(settle_for(Duration::from_millis(100)), Duration::from_millis(400));
        assert_eq!(settle_for(Duration::from_secs(10)), Duration::from_millis(1500));
    }
}
