//! The stall guard: a request whose body stops moving is cut, so that it is retried.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::uploader::Uploader;
use crate::error::{Error, Result};
use crate::registry::RegistryError;

impl Uploader<'_> {
    /// Runs a request whose body counts into `progress`, cutting it when the count stands
    /// still for the stall timeout. A slow transfer that moves is never cut; waiting for the
    /// response after the body is covered by the client's read timeout.
    pub(super) async fn guard<T>(&self, progress: &AtomicU64, request: impl Future<Output = Result<T>>) -> Result<T> {
        let stall = self.options.stall_timeout;
        tokio::pin!(request);
        let mut last = progress.load(Ordering::Relaxed);
        let mut moved_at = Instant::now();
        let tick = (stall / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::select! {
                result = &mut request => return result,
                _ = tokio::time::sleep(tick) => {
                    let now = progress.load(Ordering::Relaxed);
                    if now != last {
                        last = now;
                        moved_at = Instant::now();
                    } else if moved_at.elapsed() >= stall {
                        return Err(Error::Registry(RegistryError::Stalled {
                            registry: self.registry.clone(),
                            seconds: stall.as_secs(),
                        }));
                    }
                }
            }
        }
    }
}
