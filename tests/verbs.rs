//! Issue 12's verbs and messages: tag, delete, catalog with a prefix, login prompts and
//! refusals, platform checks, errors that name the real cause, --help, completions and the man
//! page. Against the real registry.

use crate::util::registry::{with_htpasswd, Registry};
use crate::util::{build_images, fails_with, hoist, make_dist, ok, read_json, tool};

#[test]
fn tag_delete_and_catalog_prefix() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let (layout, index) = build_images(work.path());
    let registry = Registry::start();
    let host = registry.host();
    ok(hoist().args(["push", "-q", &format!("oci:{}:multi", layout.display()), &format!("{host}/team/app:v1")]));
    ok(hoist().args(["push", "-q", &format!("oci:{}:single", layout.display()), &format!("{host}/other/app:v1")]));
    ok(hoist().args(["push", "-q", &format!("oci:{}:single", layout.display()), &format!("{host}/teamwork/app:v1")]));

    // New tags point at the same bytes without a push.
    let tagged = ok(hoist().args(["tag", &format!("{host}/team/app:v1"), "v1.0", "stable"]));
    assert_eq!(tagged.trim(), index);
    for tag in ["v1.0", "stable"] {
        assert_eq!(ok(hoist().args(["digest", &format!("{host}/team/app:{tag}")])).trim(), index);
    }
    let bad = fails_with(hoist().args(["tag", &format!("{host}/team/app:v1"), "other/app:x"]), Some(3));
    assert!(bad.contains("tags alone"), "{bad}");

    // Catalog with a prefix lists only what is under it, by whole path components.
    assert_eq!(ok(hoist().args(["catalog", &format!("{host}/team")])), "team/app\n");
    let all = ok(hoist().args(["catalog", &host]));
    assert!(all.contains("team/app") && all.contains("other/app"), "{all}");

    // Delete asks for --yes, then removes the manifest and every tag naming it.
    let unconfirmed = fails_with(hoist().args(["delete", &format!("{host}/team/app:stable")]), Some(3));
    assert!(unconfirmed.contains("--yes"), "{unconfirmed}");
    assert_eq!(ok(hoist().args(["digest", &format!("{host}/team/app:stable")])).trim(), index, "nothing deleted");
    let deleted = ok(hoist().args(["delete", "--yes", &format!("{host}/team/app:stable")]));
    assert_eq!(deleted.trim(), index);
    for tag in ["v1", "v1.0", "stable"] {
        fails_with(hoist().args(["digest", &format!("{host}/team/app:{tag}")]), Some(5));
    }
    let gone = fails_with(hoist().args(["delete", "--yes", &format!("{host}/team/app@{index}")]), Some(5));
    assert!(gone.contains("not found"), "{gone}");
    assert!(ok(hoist().args(["digest", &format!("{host}/other/app:v1")])).starts_with("sha256:"), "others stay");

    // A hint never repeats the command that failed.
    let missing = fails_with(hoist().args(["tags", &format!("{host}/team/nothing")]), Some(5));
    assert!(!missing.contains("hoist tags"), "{missing}");
}

#[test]
fn login_asks_or_names_the_missing_flag_and_a_refusal_names_the_user() {
    let work = tempfile::tempdir().unwrap();
    let registry = with_htpasswd(work.path(), &[("alice", "right")]);
    let host = registry.host();
    let config = work.path().join("docker");
    // Piped (no terminal): hoist cannot ask, and says which flag is missing.
    let no_user = fails_with(hoist().env("DOCKER_CONFIG", &config).args(["login", &host]), Some(3));
    assert!(no_user.contains("-u USER") && no_user.contains("not a terminal"), "{no_user}");
    let no_password = fails_with(hoist().env("DOCKER_CONFIG", &config).args(["login", "-u", "alice", &host]), Some(3));
    assert!(no_password.contains("--password-stdin"), "{no_password}");
    // A refused password names the user, and does not tell to run `hoist login`.
    let refused =
        fails_with(hoist().env("DOCKER_CONFIG", &config).args(["login", "-u", "alice", "-p", "wrong", &host]), Some(4));
    assert!(refused.contains("user name \"alice\"") && refused.contains("password"), "{refused}");
    assert!(!refused.contains("hoist login") && !refused.contains("  "), "{refused}");
    ok(hoist().env("DOCKER_CONFIG", &config).args(["login", "-u", "alice", "-p", "right", &host]));
}

#[test]
fn login_prompts_on_a_terminal() {
    let work = tempfile::tempdir().unwrap();
    let registry = with_htpasswd(work.path(), &[("bob", "s3cret")]);
    let config = work.path().join("docker");
    let socket = format!("hoist-login-{}", std::process::id());
    let tmux = |args: &[&str]| {
        let mut command = tool("tmux");
        command.args(["-L", &socket]).args(args);
        command
    };
    let status = work.path().join("status");
    let script = format!(
        "env TERM=xterm DOCKER_CONFIG={} HOIST_DOCKER_DAEMON_JSON=/nonexistent {} login {}; echo $? > {}; sleep 30",
        config.display(),
        env!("CARGO_BIN_EXE_hoist"),
        registry.host(),
        status.display()
    );
    ok(tmux(&["new-session", "-d", "-s", "login", "-x", "120", "-y", "20", &script]));
    let wait_for = |text: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let screen = ok(tmux(&["capture-pane", "-p", "-t", "login"]));
            if screen.contains(text) {
                return screen;
            }
            assert!(std::time::Instant::now() < deadline, "no {text:?} on the screen:\n{screen}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    wait_for("Username:");
    ok(tmux(&["send-keys", "-t", "login", "bob", "Enter"]));
    wait_for("Password:");
    ok(tmux(&["send-keys", "-t", "login", "s3cret", "Enter"]));
    let screen = wait_for("succeeded");
    let _ = tmux(&["kill-server"]).status();
    assert!(!screen.contains("s3cret"), "the password is not echoed:\n{screen}");
    assert_eq!(std::fs::read_to_string(&status).unwrap().trim(), "0");
    assert!(std::fs::read_to_string(config.join("config.json")).unwrap().contains(&registry.host()));
}

#[test]
fn platforms_are_checked_normalised_and_default_to_the_host() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let build = |platform: Option<&str>, out: &str| {
        let mut command = hoist();
        command.current_dir(work.path()).args(["build", "-q", "--layer", "dist/linux_amd64/:/app/", "--output", out]);
        if let Some(platform) = platform {
            command.args(["--platform", platform]);
        }
        command
    };
    let unknown = fails_with(build(Some("linux/amd46"), "oci:out/a"), Some(3));
    assert!(unknown.contains("amd46") && unknown.contains("arm64") && unknown.contains("riscv64"), "{unknown}");
    assert!(!work.path().join("out/a").exists(), "nothing written");
    let unknown_os = fails_with(build(Some("lnux/amd64"), "oci:out/a"), Some(3));
    assert!(unknown_os.contains("linux") && unknown_os.contains("windows"), "{unknown_os}");

    ok(build(Some("linux/x86_64"), "oci:out/b"));
    ok(build(Some("linux/aarch64"), "oci:out/b2"));
    let platform_of = |dir: &str| {
        let out = ok(hoist().current_dir(work.path()).args(["inspect", "--json", &format!("oci:{dir}")]));
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        json["manifests"][0]["platform"].as_str().unwrap().to_owned()
    };
    assert_eq!(platform_of("out/b"), "linux/amd64");
    assert_eq!(platform_of("out/b2"), "linux/arm64");
    ok(build(None, "oci:out/c"));
    let host = match std::env::consts::ARCH {
        "x86_64" => "linux/amd64",
        "aarch64" => "linux/arm64",
        other => panic!("add {other} here"),
    };
    assert_eq!(platform_of("out/c"), host, "no --platform: the host's");
    let index = read_json(&work.path().join("out/c/index.json"));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
}

#[test]
fn errors_name_the_real_cause() {
    let work = tempfile::tempdir().unwrap();
    make_dist(work.path());
    let relative = fails_with(
        hoist().current_dir(work.path()).args([
            "build",
            "--platform",
            "linux/amd64",
            "--layer",
            "dist/{os}_{arch}/:app",
            "--output",
            "oci:out/x",
        ]),
        Some(3),
    );
    assert!(relative.contains("relative") && relative.contains(":/app"), "{relative}");
    let output = fails_with(
        hoist().current_dir(work.path()).args([
            "build",
            "--platform",
            "linux/amd64",
            "--layer",
            "dist/{os}_{arch}/:/app/",
            "--output",
            "out/e5",
        ]),
        Some(3),
    );
    assert!(output.contains("oci:out/e5") && !output.contains("docker.io"), "{output}");
}

#[test]
fn help_completions_and_man_page() {
    let short = ok(hoist().args(["tags", "--help"]));
    let global = short.find("Global options:").expect("a heading for -v/-q");
    assert!(short[global..].contains("--verbose") && !short[..global].contains("--verbose"), "{short}");
    let rm = ok(hoist().args(["index", "rm", "--help"]));
    assert!(
        !rm.contains("--keep-duplicates") && rm.contains("--allow-empty") && rm.contains("[default: four times"),
        "{rm}"
    );
    assert!(rm.contains("Examples:"), "long help ends with examples: {rm}");
    let create = ok(hoist().args(["index", "create", "--help"]));
    assert!(!create.contains("--settle") && create.contains("--annotation"), "{create}");
    let inspect = ok(hoist().args(["manifest", "inspect", "--help"]));
    assert!(inspect.contains("LIST REF") && !inspect.contains("<FIRST>"), "{inspect}");
    for command in ["build", "push", "copy", "tag", "delete", "catalog", "login"] {
        let help = ok(hoist().args([command, "--help"]));
        let examples = help.split("Examples:").nth(1).unwrap_or_else(|| panic!("no examples in {command} --help"));
        assert!(examples.matches("hoist ").count() >= 1, "{command}: {examples}");
    }
    let push = ok(hoist().args(["push", "--help"]));
    assert!(push.contains("[default: 4]") && push.contains("[default: 60]"), "{push}");

    let bash = ok(hoist().args(["completions", "bash"]));
    for word in ["index", "manifest", "delete", "completions", "--platform"] {
        assert!(bash.contains(word), "bash completions lack {word}");
    }
    assert!(ok(hoist().args(["completions", "zsh"])).contains("#compdef hoist"));
    let man = ok(hoist().arg("man"));
    assert!(man.starts_with(".ie") || man.contains(".TH hoist"), "{man}");
    assert!(man.contains(".SH NAME") && man.contains(".SH SYNOPSIS") && man.contains("index"), "{man}");
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("hoist.1");
    std::fs::write(&page, &man).unwrap();
    let rendered = ok(tool("groff").args(["-man", "-Tutf8", "-ww"]).arg(&page));
    // Headings come out bold (overstruck); the subcommand list is plain text.
    assert!(rendered.contains("hoist-tag(1)") && rendered.contains("hoist-delete(1)"), "{rendered}");
}
