//! File and other blocking work run off the async threads, on tokio's blocking pool: the one
//! way hoist's async code reads directories, opens files and waits for the disk.

/// Runs `work` on tokio's blocking pool and returns what it returns; a panic in `work` goes on
/// in the caller.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // A blocking task is only cancelled when its runtime shuts down, which drops this
            // future too: nothing is left to return to.
            Err(_) => std::future::pending().await,
        },
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn work_runs_off_the_async_thread_and_returns() {
        let caller = std::thread::current().id();
        let (value, worker) = super::run(|| (7, std::thread::current().id())).await;
        assert_eq!(value, 7);
        assert_ne!(worker, caller);
    }
}
