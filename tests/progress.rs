//! The progress display as a person sees it: a push through a bandwidth-limited proxy of the
//! project's own, on a terminal (tmux) and piped into a log.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::proxy::{Fault, Proxy};
use crate::util::registry::Registry;
use crate::util::{fails_without_hanging, hoist, ok};

/// A layout tagged `v1` holding one uncompressed layer of `size` bytes that do not compress.
fn big_layout(work: &Path, size: usize) -> String {
    let src = work.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let bytes = crate::util::noise(size, 0x9e37_79b9_7f4a_7c15);
    std::fs::write(src.join("data.bin"), bytes).unwrap();
    let layout = work.join("layout");
    ok(hoist().current_dir(work).args([
        "build",
        "-q",
        "--no-cache",
        "--platform",
        "linux/amd64",
        "--layer",
        "src/:/data/",
        "--compression",
        "none",
        "--output",
        &format!("oci:{}:v1", layout.display()),
    ]));
    format!("oci:{}:v1", layout.display())
}

/// Upload requests (PUT or PATCH with a body of a blob) go at `rate` bytes a second.
fn throttled(registry: &Registry, rate: u64, cut_first: Option<usize>) -> Proxy {
    let cut = std::sync::atomic::AtomicBool::new(cut_first.is_some());
    Proxy::with_faults(registry.host(), move |request| {
        let upload = matches!(request.method(), "PUT" | "PATCH") && request.path().contains("/blobs/uploads/");
        if upload && request.length > 1 << 20 {
            if let (true, Some(bytes)) = (cut.swap(false, std::sync::atomic::Ordering::SeqCst), cut_first) {
                return Fault::CutAfter(bytes);
            }
            return Fault::Throttle(rate);
        }
        Fault::Forward
    })
}

#[test]
fn piped_progress_has_a_line_every_interval_and_never_passes_100_percent() {
    let work = tempfile::tempdir().unwrap();
    let layout = big_layout(work.path(), 5 << 20);
    let registry = Registry::start();
    // The first upload is cut after 2 MiB: its bytes are sent again, and must not count twice.
    let proxy = throttled(&registry, 2 << 20, Some(2 << 20));
    let started = Instant::now();
    let mut child = hoist()
        .env("HOIST_PROGRESS_INTERVAL", "1")
        .args(["push", &layout, &format!("{}/team/big:v1", proxy.host())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines: Vec<(Duration, String)> = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        lines.push((started.elapsed(), line.unwrap()));
    }
    assert!(child.wait().unwrap().success(), "{lines:?}");
    let text: String = lines.iter().map(|(_, l)| format!("{l}\n")).collect();
    assert!(!text.contains('\u{1b}'), "no colour codes in a log: {text}");
    assert!(!text.contains("_state"), "no upload URLs or their state: {text}");
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("retrying")).collect();
    assert!(!warnings.is_empty(), "the cut upload was retried: {text}");
    for warning in &warnings {
        assert!(warning.len() < 220 && !warning.contains("/v2/"), "one short line: {warning}");
    }
    let progress: Vec<&(Duration, String)> = lines.iter().filter(|(_, l)| l.starts_with("progress: ")).collect();
    assert!(progress.len() >= 2, "a progress line every second: {text}");
    let mut last = Duration::ZERO;
    for (at, line) in &progress {
        let percent: u64 = line["progress: ".len()..].split('%').next().unwrap().parse().unwrap();
        assert!(percent <= 100, "{line}");
        assert!(line.contains("/s") && line.contains("eta "), "{line}");
        // The interval, plus the time the binary takes to start and plan.
        assert!(at.saturating_sub(last) < Duration::from_millis(1800), "a gap before {line:?}: {text}");
        last = *at;
    }
    assert!(text.lines().any(|l| l.starts_with("blob sha256:") && l.ends_with(": uploaded")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("tag v1: written")), "{text}");
}

#[test]
fn dry_run_lines_say_what_would_happen() {
    let work = tempfile::tempdir().unwrap();
    let layout = big_layout(work.path(), 64 << 10);
    let registry = Registry::start();
    let out =
        hoist().args(["push", "--dry-run", &layout, &format!("{}/team/dry:v1", registry.host())]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("would upload") && text.contains("would write"), "{text}");
    assert!(!text.contains("uploaded") && !text.contains("written") && !text.contains("pushed"), "{text}");
}

/// tmux with this test's own server socket, so nothing else's sessions are touched.
fn tmux(socket: &str) -> Command {
    let mut command = Command::new("tmux");
    command.args(["-L", socket]);
    command
}

fn capture(socket: &str) -> String {
    let out = tmux(socket).args(["capture-pane", "-p", "-t", "push"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The "sent" figure of the overall bar: `sending 3.20 MiB/12.00 MiB (26%) …` → `3.20 MiB`.
fn sent_figure(screen: &str) -> Option<String> {
    let line = screen.lines().find(|l| l.trim_start().starts_with("sending "))?;
    Some(line.trim_start()["sending ".len()..].split('/').next()?.trim().to_owned())
}

#[test]
fn terminal_bars_move_while_bytes_go_out() {
    let work = tempfile::tempdir().unwrap();
    // One request for the whole blob, so that the kernel's socket buffers (a few MiB on
    // loopback, filled at once) are a small part of it.
    let layout = big_layout(work.path(), 24 << 20);
    let registry = Registry::start();
    let proxy = throttled(&registry, 2 << 20, None);
    let socket = format!("hoist-test-{}", std::process::id());
    let status = work.path().join("status");
    let script = format!(
        "env TERM=xterm DOCKER_CONFIG=/nonexistent HOIST_DOCKER_DAEMON_JSON=/nonexistent {} push --chunk-size 64M {layout} {}/team/big:v1 >/dev/null; echo $? > {}; sleep 60",
        env!("CARGO_BIN_EXE_hoist"),
        proxy.host(),
        status.display()
    );
    ok(tmux(&socket).args(["new-session", "-d", "-s", "push", "-x", "160", "-y", "30", &script]));
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let screen = capture(&socket);
        match sent_figure(&screen) {
            Some(sent) if !sent.starts_with("0 ") => break (sent, screen),
            _ if Instant::now() > deadline => panic!("no progress bar on the terminal:\n{screen}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    std::thread::sleep(Duration::from_millis(1200));
    let second = capture(&socket);
    let moved = sent_figure(&second);
    let finished = status.exists();
    let _ = tmux(&socket).args(["kill-server"]).status();
    assert!(!finished, "the push should still be going after one second");
    assert_ne!(moved.as_deref(), Some(first.0.as_str()), "the byte counter did not move:\n{}\n---\n{second}", first.1);
    assert!(moved.is_some(), "the bar went away:\n{second}");
    assert!(first.1.contains("MiB/s") || first.1.contains("KiB/s"), "a rate: {}", first.1);
    assert!(first.1.contains("eta"), "an ETA: {}", first.1);
}

#[test]
fn build_shows_the_bytes_compressed_as_it_goes() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let bytes = crate::util::noise(16 << 20, 0x2545_f491_4f6c_dd1d);
    std::fs::write(src.join("data.bin"), bytes).unwrap();
    let out = hoist()
        .current_dir(work.path())
        .env("HOIST_PROGRESS_INTERVAL", "0.05")
        .args(["build", "--no-cache", "--platform", "linux/amd64", "--layer", "src/:/data/", "--output", "oci:out"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("building: ")).collect();
    assert!(!lines.is_empty(), "no build progress in the log: {text}");
    assert!(lines.iter().all(|l| l.contains("of layers compressed at") && l.ends_with("/s")), "{text}");
    assert!(lines.iter().any(|l| !l.starts_with("building: 0 B")), "the count grows: {text}");
}

/// `command` run by `taskset -c 0`, with the same environment.
fn on_one_core(command: Command) -> Command {
    let mut pinned = Command::new("taskset");
    pinned.args(["-c", "0"]).arg(command.get_program());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => pinned.env(key, value),
            None => pinned.env_remove(key),
        };
    }
    pinned
}

#[test]
fn errors_exit_at_once_whatever_the_progress_interval() {
    let work = tempfile::tempdir().unwrap();
    // A build that fails inside its display's lifetime: arm64's layer source is missing. On one
    // core the build usually fails before the display's thread first runs, which is when the
    // old display missed its wake-up and slept a whole interval (about one run in six).
    std::fs::create_dir_all(work.path().join("dist/amd64")).unwrap();
    std::fs::write(work.path().join("dist/amd64/server"), "binary").unwrap();
    for _ in 0..30 {
        let mut build = on_one_core(hoist());
        build.current_dir(work.path()).args([
            "build",
            "--no-cache",
            "--platform",
            "linux/amd64",
            "--platform",
            "linux/arm64",
            "--layer",
            "dist/{arch}/:/app/",
            "--output",
            "oci:out",
        ]);
        // Progress lines an hour apart: a display that holds the exit fails the test.
        build.env("HOIST_PROGRESS_INTERVAL", "3600");
        let error = fails_without_hanging(build, Some(3));
        assert!(error.contains("dist/arm64") && error.contains("does not exist"), "{error}");
    }

    // A push that fails while its display runs: the registry refuses every blob.
    let layout = format!("oci:{}:v1", work.path().join("layout").display());
    ok(hoist().current_dir(work.path()).args(["build", "-q", "--layer", "dist/amd64/:/app/", "--output", &layout]));
    let refusing = crate::util::hostile::Hostile::start(|head| match head.starts_with("GET /v2/ ") {
        true => crate::util::hostile::Reply::json("200 OK", "{}"),
        false => crate::util::hostile::Reply::json(
            "403 Forbidden",
            r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
        ),
    });
    for _ in 0..5 {
        let mut push = hoist();
        push.env("HOIST_PROGRESS_INTERVAL", "3600").args([
            "push",
            &layout,
            &format!("{}/team/app:v1", refusing.host()),
        ]);
        fails_without_hanging(push, Some(4));
    }

    // An interval past what a Duration holds is the longest one, not a panic.
    let mut build = hoist();
    build.current_dir(work.path()).env("HOIST_PROGRESS_INTERVAL", "1e30");
    ok(build.args(["build", "--layer", "dist/amd64/:/app/", "--output", &layout]));
}
