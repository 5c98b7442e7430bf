//! The progress display of every command that moves content (push, build --push, copy).
//!
//! On a terminal: an overall bar (bytes, rate, ETA) and a bar per blob in flight, redrawn
//! several times a second by a ticker thread that reads the byte counters the sinks update.
//! Elsewhere (CI logs): a line per finished object and a progress line (percent, rate, ETA) at
//! least every `$HOIST_PROGRESS_INTERVAL` seconds (default 10), whether or not anything
//! finished. A retried byte is never counted twice: each blob counts at most its size, and the
//! total at most what is to be sent.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hoist::digest::Digest;
use hoist::reference::ManifestRef;
use hoist::sink::BlobOutcome;
use hoist::transfer::Observer;
use indicatif::{HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars on screen, for log lines to be printed above them (see [`LogWriter`]).
static SCREEN: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// How often the terminal display is redrawn.
const REDRAW: Duration = Duration::from_millis(200);

/// The longest wait between progress lines in a log, in seconds: a day.
const MAX_LOG_INTERVAL: f64 = 86_400.0;

/// How often a progress line goes to a log: `$HOIST_PROGRESS_INTERVAL` seconds, default 10,
/// at most [`MAX_LOG_INTERVAL`].
fn log_interval() -> Duration {
    std::env::var("HOIST_PROGRESS_INTERVAL")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(10), |s| Duration::from_secs_f64(s.min(MAX_LOG_INTERVAL)))
}

/// Whether stderr may carry colour codes: a terminal, and `NO_COLOR` unset or empty.
pub fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A blob in flight.
struct Active {
    digest: Digest,
    size: u64,
    sent: Arc<AtomicU64>,
    bar: Option<ProgressBar>,
}

struct State {
    bars: Option<(MultiProgress, ProgressBar)>,
    quiet: bool,
    dry_run: bool,
    /// Bytes of every blob of the plan.
    planned: AtomicU64,
    /// Bytes of blobs that were already there or mounted: never sent.
    not_sent: AtomicU64,
    /// Bytes of blobs uploaded and finished.
    done: AtomicU64,
    active: Mutex<Vec<Active>>,
    started: Instant,
}

impl State {
    fn total(&self) -> u64 {
        self.planned.load(Ordering::Relaxed).saturating_sub(self.not_sent.load(Ordering::Relaxed))
    }

    /// Bytes sent so far, each blob counting at most its size.
    fn sent(&self) -> u64 {
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let in_flight: u64 = active.iter().map(|a| a.sent.load(Ordering::Relaxed).min(a.size)).sum();
        self.done.load(Ordering::Relaxed).saturating_add(in_flight).min(self.total())
    }

    fn redraw(&self) {
        let Some((_, overall)) = &self.bars else { return };
        overall.set_length(self.total());
        overall.set_position(self.sent());
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        for blob in active.iter() {
            if let Some(bar) = &blob.bar {
                bar.set_position(blob.sent.load(Ordering::Relaxed).min(blob.size));
            }
        }
    }

    fn log_line(&self) -> String {
        let (sent, total) = (self.sent(), self.total());
        let percent = sent.saturating_mul(100).checked_div(total).unwrap_or(100);
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 { sent as f64 / seconds } else { 0.0 };
        // No rate yet, or sizes a Duration cannot hold: unknown.
        let eta = match Duration::try_from_secs_f64((total - sent) as f64 / rate) {
            Ok(left) if rate > 0.0 => HumanDuration(left).to_string(),
            _ => "unknown".to_owned(),
        };
        format!(
            "progress: {percent}% ({} of {}) at {}/s, eta {eta}",
            HumanBytes(sent),
            HumanBytes(total),
            HumanBytes(rate as u64)
        )
    }

    fn say(&self, line: &str) {
        match &self.bars {
            Some((multi, _)) => {
                let _ = multi.println(line);
            }
            None if !self.quiet => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            None => {}
        }
    }
}

/// The display, told about the transfer as an [`Observer`].
pub struct Progress {
    state: Arc<State>,
    ticker: Option<Ticker>,
}

impl Progress {
    /// A display for a transfer (its size comes with [`Observer::planned`]); silent when
    /// `quiet`.
    pub fn new(quiet: bool, dry_run: bool) -> Progress {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            let overall = multi.add(ProgressBar::new(0));
            overall.set_style(
                ProgressStyle::with_template(
                    "{prefix} {bytes}/{total_bytes} ({percent}%) {bytes_per_sec}, eta {eta} {wide_bar}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            overall.set_prefix(if dry_run { "checking" } else { "sending" });
            *SCREEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(multi.clone());
            (multi, overall)
        });
        let state = Arc::new(State {
            bars,
            quiet,
            dry_run,
            planned: AtomicU64::new(0),
            not_sent: AtomicU64::new(0),
            done: AtomicU64::new(0),
            active: Mutex::new(Vec::new()),
            started: Instant::now(),
        });
        let ticker = (!quiet && !dry_run).then(|| {
            let interval = if state.bars.is_some() { REDRAW } else { log_interval() };
            let state = Arc::clone(&state);
            Ticker::start(interval, move || match state.bars {
                Some(_) => state.redraw(),
                None => {
                    let line = state.log_line();
                    let _ = writeln!(std::io::stderr().lock(), "{line}");
                }
            })
        });
        Progress { state, ticker }
    }

    /// Stops the ticker and clears the bars.
    pub fn finish(mut self) {
        self.ticker.take();
        if let Some((multi, overall)) = &self.state.bars {
            *SCREEN.lock().unwrap_or_else(|e| e.into_inner()) = None;
            overall.finish_and_clear();
            let _ = multi.clear();
        }
    }
}

/// A thread that calls its task every interval until the ticker is dropped. Dropping it wakes
/// the thread at once, whenever that happens (even before the thread first waits), and waits
/// for it: an error exit is never held up by a display.
struct Ticker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    fn start(interval: Duration, mut task: impl FnMut() + Send + 'static) -> Ticker {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // Nothing is ever sent: the sender's drop ends the wait with `Disconnected`.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                task();
            }
        });
        Ticker { stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Observer for Progress {
    fn planned(&self, bytes: u64) {
        self.state.planned.store(bytes, Ordering::Relaxed);
    }

    fn blob_started(&self, digest: &Digest, size: u64, sent: Arc<AtomicU64>) {
        let bar = self.state.bars.as_ref().filter(|_| !self.state.dry_run).map(|(multi, _)| {
            let bar = multi.add(ProgressBar::new(size));
            bar.set_style(
                ProgressStyle::with_template("  {msg} {bytes}/{total_bytes} {bar:30}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(digest.hex().chars().take(12).collect::<String>());
            bar
        });
        let mut active = self.state.active.lock().unwrap_or_else(|e| e.into_inner());
        active.push(Active { digest: digest.clone(), size, sent, bar });
    }

    fn blob_finished(&self, digest: &Digest, size: u64, outcome: &BlobOutcome) {
        {
            let mut active = self.state.active.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(at) = active.iter().position(|a| &a.digest == digest) {
                let blob = active.remove(at);
                if let Some(bar) = blob.bar {
                    bar.finish_and_clear();
                }
            }
            // Under the same lock as the removal, so the sum never dips nor double-counts.
            match (outcome, self.state.dry_run) {
                (BlobOutcome::Pushed, false) => self.state.done.fetch_add(size, Ordering::Relaxed),
                _ => self.state.not_sent.fetch_add(size, Ordering::Relaxed),
            };
        }
        self.state.redraw();
        let what = match (outcome, self.state.dry_run) {
            (BlobOutcome::Skipped, _) => "already there".to_owned(),
            (BlobOutcome::Pushed, false) => "uploaded".to_owned(),
            (BlobOutcome::Pushed, true) => "would upload".to_owned(),
            (BlobOutcome::Mounted(from), false) => format!("mounted from {from}"),
            (BlobOutcome::Mounted(from), true) => format!("would mount from {from}"),
        };
        self.state.say(&format!("blob {digest} ({}): {what}", HumanBytes(size)));
    }

    fn manifest_finished(&self, reference: &ManifestRef, written: bool) {
        let what = match (written, self.state.dry_run) {
            (false, _) => "already there",
            (true, false) => "written",
            (true, true) => "would write",
        };
        let kind = match reference {
            ManifestRef::Digest(_) => "manifest",
            ManifestRef::Tag(_) => "tag",
        };
        self.state.say(&format!("{kind} {reference}: {what}"));
    }
}

/// The display of a build: the bytes of compressed layers written, with their rate; a spinner
/// on a terminal, a line every interval in a log.
pub struct BuildDisplay {
    spinner: Option<ProgressBar>,
    ticker: Option<Ticker>,
}

impl BuildDisplay {
    /// Shows `written` (bytes) as it grows; nothing when `quiet`.
    pub fn start(written: Arc<AtomicU64>, quiet: bool) -> BuildDisplay {
        if quiet {
            return BuildDisplay { spinner: None, ticker: None };
        }
        let spinner = std::io::stderr().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
            let spinner = multi.add(ProgressBar::new_spinner());
            spinner.set_style(
                ProgressStyle::with_template(
                    "{spinner} building: {bytes} of layers compressed ({bytes_per_sec}) {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            *SCREEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(multi);
            spinner
        });
        let interval = if spinner.is_some() { REDRAW } else { log_interval() };
        let (started, shown) = (Instant::now(), spinner.clone());
        let ticker = Ticker::start(interval, move || {
            let bytes = written.load(Ordering::Relaxed);
            match &shown {
                Some(spinner) => spinner.set_position(bytes),
                None => {
                    let seconds = started.elapsed().as_secs_f64().max(0.001);
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "building: {} of layers compressed at {}/s",
                        HumanBytes(bytes),
                        HumanBytes((bytes as f64 / seconds) as u64)
                    );
                }
            }
        });
        BuildDisplay { spinner, ticker: Some(ticker) }
    }

    /// Stops the display and clears the spinner.
    pub fn finish(self) {}
}

impl Drop for BuildDisplay {
    fn drop(&mut self) {
        self.ticker.take();
        if let Some(spinner) = self.spinner.take() {
            *SCREEN.lock().unwrap_or_else(|e| e.into_inner()) = None;
            spinner.finish_and_clear();
        }
    }
}

/// The display of `build`: the bytes of layers compressed while it builds, then the push's
/// progress when there is one (started when the push starts).
pub struct BuildProgress {
    quiet: bool,
    dry_run: bool,
    building: Mutex<Option<BuildDisplay>>,
    pushing: std::sync::OnceLock<Progress>,
}

impl BuildProgress {
    /// A display, silent when `quiet`; `dry_run` for a push that only looks.
    pub fn new(quiet: bool, dry_run: bool) -> BuildProgress {
        BuildProgress { quiet, dry_run, building: Mutex::new(None), pushing: std::sync::OnceLock::new() }
    }

    /// Stops whatever is on screen.
    pub fn finish(self) {
        hoist::ops::BuildObserver::built(&self);
        if let Some(pushing) = self.pushing.into_inner() {
            pushing.finish();
        }
    }

    fn push(&self) -> &Progress {
        self.pushing.get_or_init(|| Progress::new(self.quiet, self.dry_run))
    }
}

impl hoist::ops::BuildObserver for BuildProgress {
    fn building(&self, written: Arc<AtomicU64>) {
        *self.building.lock().unwrap_or_else(|e| e.into_inner()) = Some(BuildDisplay::start(written, self.quiet));
    }

    fn built(&self) {
        if let Some(display) = self.building.lock().unwrap_or_else(|e| e.into_inner()).take() {
            display.finish();
        }
    }
}

impl Observer for BuildProgress {
    fn planned(&self, bytes: u64) {
        self.push().planned(bytes);
    }

    fn blob_started(&self, digest: &Digest, size: u64, sent: Arc<AtomicU64>) {
        self.push().blob_started(digest, size, sent);
    }

    fn blob_finished(&self, digest: &Digest, size: u64, outcome: &BlobOutcome) {
        self.push().blob_finished(digest, size, outcome);
    }

    fn manifest_finished(&self, reference: &hoist::reference::ManifestRef, written: bool) {
        self.push().manifest_finished(reference, written);
    }
}

/// Where tracing's lines go: stderr, above the bars when they are on screen, with any URL's
/// query (upload session state, tokens) left out so a warning stays one short line.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = tidy(&String::from_utf8_lossy(buf));
        let screen = SCREEN.lock().unwrap_or_else(|e| e.into_inner());
        match screen.as_ref() {
            Some(multi) => {
                let _ = multi.println(text.trim_end_matches('\n'));
            }
            None => std::io::stderr().lock().write_all(text.as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A log line as a person wants it: URLs without their query, and a retry warning on one
/// short line: no request URL (the registry is named already), no advice meant for a final
/// failure ("check the host name…" while hoist is still retrying), digests cut to 12 digits.
pub fn tidy(line: &str) -> String {
    let mut text = shorten_urls(line);
    while let Some(start) = text.find(" for url (") {
        let Some(end) = text[start..].find(')') else { break };
        text.replace_range(start..start + end + 1, "");
    }
    if let Some(retrying) = text.find("; retrying in ") {
        if let Some(advice) = text[..retrying].find("; check ") {
            text.replace_range(advice..retrying, "");
        }
        let mut short = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find("sha256:") {
            let hex = &rest[at + 7..];
            let digits = hex.bytes().take_while(u8::is_ascii_hexdigit).count();
            short.push_str(&rest[..at + 7]);
            short.push_str(&hex[..digits.min(12)]);
            rest = &hex[digits..];
        }
        short.push_str(rest);
        text = short;
    }
    text
}

/// `text` with every `http(s)://host/path?query` cut to `host/path`: upload URLs carry
/// `_state` tokens that say nothing to a person and fill the line.
pub fn shorten_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = [rest.find("http://"), rest.find("https://")].into_iter().flatten().min() {
        out.push_str(&rest[..start]);
        let url = &rest[start..];
        let end =
            url.find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ',')).unwrap_or(url.len());
        let whole = &url[..end];
        let bare = whole.split_once("://").map_or(whole, |(_, after)| after);
        out.push_str(bare.split(['?', '#']).next().unwrap_or(bare));
        rest = &url[end..];
    }
    out.push_str(rest);
    out
}
