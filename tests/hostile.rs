//! Trust boundaries (issue 10): registries and layouts that lie, loop, flood or attack get a
//! clean error with the right exit code; credentials never leave their host; nothing
//! unverified is stored or sent; nothing loops, fills the disk or panics.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::util::hostile::{Hostile, Reply};
use crate::util::proxy::{Fault, Proxy, Response};
use crate::util::registry::{with_htpasswd, Registry};
use crate::util::{build_images, commit_json, fails_with, fails_without_hanging, hoist, make_dist, ok, read_json};

const CREDS: &str = "alice:wonderland";

/// A hostile server that answers `/v2/` with 200 and everything else with `handler`.
fn registry_like(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> Hostile {
    Hostile::start(move |head| match head.lines().next().unwrap_or_default() {
        line if line.starts_with("GET /v2/ ") => Reply::json("200 OK", "{}"),
        _ => handler(head),
    })
}

fn layout_with_app(work: &Path) -> std::path::PathBuf {
    make_dist(work);
    build_images(work).0
}

/// The app with a 64 KiB incompressible file, so its layers go up in 1K chunks.
fn layout_with_big_app(work: &Path) -> std::path::PathBuf {
    crate::util::build_noisy_images(work, 64 << 10)
}

/// 1 and 3: an upload Location on another host gets no credentials; a token realm on another
/// host is said at -v.
#[test]
fn credentials_stay_on_the_registry_host() {
    let secrets = tempfile::tempdir().unwrap();
    let registry = with_htpasswd(secrets.path(), &[("alice", "wonderland")]);
    let elsewhere = Hostile::start(|_| Reply::Send("201 Created".into(), vec![], vec![]));
    let other = elsewhere.host();
    let proxy = Proxy::start(registry.host(), move |line, response| {
        if line.starts_with("POST ") && line.contains("/blobs/uploads/") {
            response.set_header("Location", &format!("http://{other}/stolen/upload"));
        }
    });
    let work = tempfile::tempdir().unwrap();
    let layout = layout_with_app(work.path());
    let out = hoist()
        .args(["push", "-q", "--creds", CREDS, "--retries", "0"])
        .arg(format!("oci:{}:single", layout.display()))
        .arg(format!("{}/team/app:v1", proxy.host()))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the blobs never reached the registry, so the manifest cannot go up");
    assert!(!elsewhere.heads.lock().unwrap().is_empty(), "the upload went to the other host");
    assert!(elsewhere.heads_with("authorization").is_empty(), "credentials leaked: {:?}", elsewhere.heads);

    let token = Hostile::start(|_| Reply::json("200 OK", r#"{"token":"t","expires_in":18446744073709551615}"#));
    let realm = format!("http://{}/token", token.host());
    let hostile = registry_like(move |head| match head.to_ascii_lowercase().contains("authorization: bearer t") {
        true => Reply::json("404 Not Found", r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"none"}]}"#),
        false => Reply::Send(
            "401 Unauthorized".into(),
            vec![format!(r#"WWW-Authenticate: Bearer realm="{realm}",service="x""#)],
            b"{}".to_vec(),
        ),
    });
    let out = hoist().args(["-v", "inspect", &format!("{}/team/app:v1", hostile.host())]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains(&format!("{} for a token", token.host())) && stderr.contains("asking"), "{stderr}");
}

/// Review of issue 21, 1: a blob GET redirected to another server that answers 401 with a
/// token realm on itself gets no credential there (no token asked with the password, nothing
/// looked up): hoist answers only the registry's own challenges (exit 4, naming that server).
#[test]
fn a_challenge_from_where_a_redirect_led_gets_no_credentials() {
    let storage = Hostile::start(|head| {
        let host = head.lines().find_map(|l| l.strip_prefix("host: ").or(l.strip_prefix("Host: "))).unwrap_or("");
        match head.starts_with("GET /token") {
            true => Reply::json("200 OK", r#"{"token":"t"}"#),
            false => Reply::Send(
                "401 Unauthorized".into(),
                vec![format!(r#"WWW-Authenticate: Bearer realm="http://{host}/token",service="storage""#)],
                b"{}".to_vec(),
            ),
        }
    });
    let manifest = image_manifest(br#"{"architecture":"amd64","os":"linux"}"#, &[]).to_string();
    let to = storage.host();
    let registry = registry_like(move |head| match head.contains("/manifests/") {
        true => Reply::json("200 OK", &manifest),
        false => {
            let path = head.split_whitespace().nth(1).unwrap_or_default();
            Reply::Send("307 Temporary Redirect".into(), vec![format!("Location: http://{to}/storage{path}")], vec![])
        }
    });
    let out = hoist()
        .args(["inspect", "--config", "--creds", CREDS, &format!("{}/a/b:c", registry.host())])
        .output()
        .unwrap();
    assert!(!storage.heads.lock().unwrap().is_empty(), "the redirect was followed");
    assert!(storage.heads_with("authorization").is_empty(), "credentials leaked: {:?}", storage.heads);
    assert!(storage.heads_with("/token").is_empty(), "no token asked there: {:?}", storage.heads);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("redirected to http://{}, which asks for credentials", storage.host())),
        "{stderr}"
    );
}

/// Review of issue 21, 2: a token asked for by a blob transfer is a document: one sent a byte
/// every 2 s is cut by the document deadline (exit 6), not waited on without end.
#[test]
fn a_token_asked_during_a_transfer_has_the_document_deadline() {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let config_digest = format!("sha256:{:x}", Sha256::digest(config));
    let manifest = image_manifest(config, &[b"not a real layer"]).to_string();
    let registry = registry_like(move |head| {
        let host = head.lines().find_map(|l| l.strip_prefix("host: ").or(l.strip_prefix("Host: "))).unwrap_or("");
        match head.split_whitespace().nth(1).unwrap_or_default() {
            path if path.starts_with("/token") => {
                let body = format!(r#"{{"token":"{}"}}"#, "t".repeat(100)).into_bytes();
                Reply::Trickle("200 OK".into(), vec![], body, Duration::from_secs(2))
            }
            path if path.contains("/manifests/") => Reply::json("200 OK", &manifest),
            path if path.ends_with(&config_digest) => Reply::Send("200 OK".into(), vec![], config.to_vec()),
            _ => Reply::Send(
                "401 Unauthorized".into(),
                vec![format!(r#"WWW-Authenticate: Bearer realm="http://{host}/token",service="x""#)],
                b"{}".to_vec(),
            ),
        }
    });
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let error = fails_without_hanging(
        hoist().env("HOIST_DOCUMENT_TIMEOUT", "3").args([
            "copy",
            "-q",
            "--retries",
            "0",
            &format!("{}/a/b:c", registry.host()),
            &format!("oci:{}:c", out.display()),
        ]),
        Some(6),
    );
    assert!(error.contains("did not answer in time"), "{error}");
    assert_eq!(registry.heads_with("GET /token").len(), 1, "{:?}", registry.heads);
}

/// An image manifest (as JSON) with `config` and gzip `layers`.
fn image_manifest(config: &[u8], layers: &[&[u8]]) -> Value {
    let descriptor = |media_type: &str, blob: &[u8]| {
        let digest = format!("sha256:{:x}", Sha256::digest(blob));
        json!({ "mediaType": media_type, "digest": digest, "size": blob.len() })
    };
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", config),
        "layers": layers.iter().map(|l| descriptor("application/vnd.oci.image.layer.v1.tar+gzip", l)).collect::<Vec<_>>(),
    })
}

/// 2 and 16: page links to another host are not followed, a link that repeats a page ends
/// the listing, and a malformed link does not panic.
#[test]
fn tag_pages_stay_on_the_registry_and_end() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let layout = layout_with_app(work.path());
    ok(hoist().args([
        "push",
        "-q",
        &format!("oci:{}:single", layout.display()),
        &format!("{}/team/app:v1", registry.host()),
    ]));
    let elsewhere = Hostile::start(|_| Reply::json("200 OK", r#"{"name":"team/app","tags":["evil"]}"#));
    for link in [
        format!("<http://{}/v2/team/app/tags/list?n=1>; rel=\"next\"", elsewhere.host()),
        "</v2/team/app/tags/list?n=1000>; rel=\"next\"".to_owned(),
        ">x<; rel=\"next\"".to_owned(),
    ] {
        let proxy = Proxy::start(registry.host(), move |line, response| {
            if line.contains("/tags/list") {
                response.head.push_str(&format!("\r\nLink: {link}"));
            }
        });
        let tags = ok(hoist().args(["tags", &format!("{}/team/app", proxy.host())]));
        assert_eq!(tags.trim(), "v1");
        assert!(proxy.count("GET", "/tags/list") <= 2, "a repeated page ends the listing");
    }
    assert!(elsewhere.heads.lock().unwrap().is_empty(), "a page on another host was fetched");
}

/// 4: a poisoned cache blob is found and not used; a base layout's blob that does not match
/// its digest never enters the cache.
#[test]
fn the_cache_holds_only_verified_blobs() {
    let work = tempfile::tempdir().unwrap();
    let layout = layout_with_app(work.path());
    let cache = work.path().join("cache");
    let app = work.path().join("app");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("new.txt"), "new\n").unwrap();
    let build = |out: &str| {
        let mut command = hoist();
        command.env("XDG_CACHE_HOME", &cache).args([
            "build",
            "--platform",
            "linux/amd64",
            "--layer",
            &format!("{}:/srv/", app.display()),
            "--base",
            &format!("oci:{}:multi", layout.display()),
            "--output",
            &format!("oci:{}:v1", work.path().join(out).display()),
        ]);
        command
    };
    let first = ok(build("one"));
    let blobs = cache.join("hoist/blobs/sha256");
    let mut poisoned = 0;
    for entry in fs::read_dir(&blobs).unwrap() {
        let path = entry.unwrap().path();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&path, "poison").unwrap();
        poisoned += 1;
    }
    assert!(poisoned > 0);
    let second = ok(build("two"));
    assert_eq!(first, second, "the same image, built from verified blobs");
    for entry in fs::read_dir(work.path().join("two/blobs/sha256")).unwrap() {
        let entry = entry.unwrap();
        let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
        assert_eq!(
            hoist::Digest::of(&fs::read(entry.path()).unwrap()).to_string(),
            digest,
            "a poisoned blob reached the layout"
        );
    }

    // A base layout whose layer blob lies: refused (7), and not cached.
    let index = read_json(&layout.join("index.json"));
    let _ = index;
    let fresh = work.path().join("fresh-cache");
    let base_layer = first_layer(&layout);
    fs::write(
        layout.join("blobs/sha256").join(&base_layer),
        vec![b'x'; fs::metadata(layout.join("blobs/sha256").join(&base_layer)).unwrap().len() as usize],
    )
    .unwrap();
    let error = fails_with(build("three").env("XDG_CACHE_HOME", &fresh), Some(7));
    assert!(error.contains("digest"), "{error}");
    assert!(!fresh.join("hoist/blobs/sha256").join(&base_layer).exists(), "a lying blob was cached");
}

/// The hex of the first layer of the amd64 image under `multi`.
fn first_layer(layout: &Path) -> String {
    let text = ok(hoist().args([
        "inspect",
        "--json",
        "--platform",
        "linux/amd64",
        &format!("oci:{}:multi", layout.display()),
    ]));
    let json: Value = serde_json::from_str(&text).unwrap();
    json["layers"][0]["digest"].as_str().unwrap().trim_start_matches("sha256:").to_owned()
}

/// 5 and 6: a blob that is a symlink out of the layout, or whose bytes do not match its
/// digest, is refused (7) before anything is committed.
#[test]
fn layout_blobs_are_regular_files_with_their_digest() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let layout = layout_with_app(work.path());
    let blob = layout.join("blobs/sha256").join(first_layer(&layout));
    let original = fs::read(&blob).unwrap();
    let secret = work.path().join("secret");
    fs::write(&secret, &original).unwrap();
    fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(&secret, &blob).unwrap();
    let proxy = Proxy::with_faults(registry.host(), |_| Fault::Forward);
    let push = |extra: &[&str]| {
        let mut command = hoist();
        command
            .args(["push", "-q", &format!("oci:{}:multi", layout.display()), &format!("{}/team/app:v1", proxy.host())])
            .args(extra);
        command
    };
    let error = fails_with(push(&[]), Some(7));
    assert!(error.contains("symlink"), "{error}");
    assert_eq!(
        proxy.count("PATCH", "/v2/") + proxy.count("PUT", "/blobs/"),
        0,
        "nothing was uploaded: {:?}",
        proxy.requests.lock().unwrap()
    );

    // Same size, other bytes: caught while it is read, before the upload is committed.
    fs::remove_file(&blob).unwrap();
    let mut lying = original.clone();
    let last = lying.len() - 1;
    lying[last] ^= 0xff;
    fs::write(&blob, &lying).unwrap();
    for extra in [&["--retries", "0"][..], &["--retries", "0", "--chunk-size", "1K"][..]] {
        let error = fails_with(push(extra), Some(7));
        assert!(error.contains("digest"), "{error}");
    }
    let head = hoist().args(["inspect", &format!("{}/team/app:v1", registry.host())]).output().unwrap();
    assert_eq!(head.status.code(), Some(5), "no tag was written");
}

/// 7 and 8: a reference pinned with sha512 is verified with sha512; sizes that are not counts
/// are refused (7).
#[test]
fn pinned_digests_and_sizes_are_checked() {
    let document = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":-1},"layers":[]}"#;
    let hostile = registry_like(move |_| {
        Reply::Send(
            "200 OK".into(),
            vec!["Content-Type: application/vnd.oci.image.manifest.v1+json".into()],
            document.to_vec(),
        )
    });
    let pinned = format!("{}/team/app@sha512:{}", hostile.host(), "ab".repeat(64));
    let error = fails_with(hoist().args(["inspect", &pinned]), Some(7));
    assert!(error.contains("sha512"), "{error}");
    let error = fails_with(hoist().args(["inspect", &format!("{}/team/app:v1", hostile.host())]), Some(7));
    assert!(error.contains("not a valid OCI document"), "{error}");

    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let writer = hoist::layout::LayoutWriter::begin(&layout).unwrap();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": hoist::Digest::of(b"{}").to_string(), "size": false },
        "layers": [],
    });
    commit_json(writer, &manifest, oci_spec::image::MediaType::ImageManifest, "bad");
    let error = fails_with(
        hoist().args(["push", "--dry-run", &format!("oci:{}:bad", layout.display()), "127.0.0.1:9/x:y"]),
        Some(7),
    );
    assert!(error.contains("not a valid OCI document"), "{error}");
}

/// 10, 11, 13 (FIFO), 15, 16 (timestamps and sizes): hostile layouts and inputs.
#[test]
fn hostile_layouts_and_inputs_are_refused_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let layout = layout_with_app(work.path());
    let victim = work.path().join("victim");
    fs::write(&victim, "keep me").unwrap();
    let _ = fs::remove_file(layout.join(".hoist.lock"));
    std::os::unix::fs::symlink(&victim, layout.join(".hoist.lock")).unwrap();
    let app = work.path().join("dist/linux_amd64");
    let build = |extra: &[&str]| {
        let mut command = hoist();
        command.args(["build", "--platform", "linux/amd64"]).args(extra);
        command
    };
    let into_layout = format!("oci:{}:other", layout.display());
    let error = fails_with(build(&["--layer", &format!("{}:/app/", app.display()), "--output", &into_layout]), Some(7));
    assert!(error.contains("lock"), "{error}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");

    let out = format!("oci:{}", work.path().join("out").display());
    let error = fails_with(build(&["--layer", &format!("{}:/../../x/", app.display()), "--output", &out]), Some(3));
    assert!(error.contains(".."), "{error}");
    let error = fails_with(
        build(&["--layer", &format!("{}:/app/", app.display()), "--output", &out])
            .env("SOURCE_DATE_EPOCH", "99999999999999"),
        Some(3),
    );
    assert!(error.contains("SOURCE_DATE_EPOCH"), "{error}");
    let clap = hoist().args(["push", "--chunk-size", "99999999999999G", "oci:x", "127.0.0.1:9/x"]).output().unwrap();
    assert_eq!(clap.status.code(), Some(2), "{}", String::from_utf8_lossy(&clap.stderr));

    // A file that changes while its layer is written (procfs says size 0, then gives bytes).
    let error = fails_with(build(&["--layer", "/proc/self/status:/status", "--output", &out]), Some(1));
    assert!(error.contains("/proc/self/status") && error.contains("changed"), "{error}");

    // A FIFO as the layout marker: refused at once, no hang.
    let fifo = work.path().join("fifo-layout");
    fs::create_dir_all(&fifo).unwrap();
    ok(crate::util::tool("mkfifo").arg(fifo.join("oci-layout")));
    let started = Instant::now();
    let error = fails_with(hoist().args(["inspect", &format!("oci:{}", fifo.display())]), Some(3));
    assert!(error.contains("oci-layout"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Indexes nested deeper than hoist follows: a clean error, not a stack overflow.
    let nested = work.path().join("nested");
    let mut writer = hoist::layout::LayoutWriter::begin(&nested).unwrap();
    let (config, config_size) = writer
        .add_json(&json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}), "c")
        .unwrap();
    let image = json!({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":config.to_string(),"size":config_size},"layers":[]});
    let (mut digest, mut size) = writer.add_json(&image, "m").unwrap();
    let mut media_type = "application/vnd.oci.image.manifest.v1+json";
    for _ in 0..40 {
        let index = json!({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
            "manifests":[{"mediaType":media_type,"digest":digest.to_string(),"size":size}]});
        (digest, size) = writer.add_json(&index, "i").unwrap();
        media_type = "application/vnd.oci.image.index.v1+json";
    }
    let root = hoist::model::Descriptor::new(hoist::model::MediaType::OciIndex, digest, size);
    writer.commit(root, Some("deep")).unwrap();
    let error = fails_with(
        hoist().args(["push", "--dry-run", &format!("oci:{}:deep", nested.display()), "127.0.0.1:9/x:y"]),
        Some(7),
    );
    assert!(error.contains("nests"), "{error}");
}

/// 12: a registry whose Range never advances, or wraps, does not make hoist loop; one that
/// refuses every chunk ends within the retries.
#[test]
fn upload_offsets_from_the_registry_cannot_make_hoist_loop() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let layout = layout_with_big_app(work.path());
    for range in ["0-0", "0-18446744073709551615"] {
        let proxy = Proxy::start(registry.host(), move |line, response| {
            if line.starts_with("PATCH ") || (line.starts_with("GET ") && line.contains("/uploads/")) {
                response.set_header("Range", range);
            }
        });
        let repository = if range == "0-0" { "team/zero" } else { "team/wrap" };
        let target = format!("{}/{repository}:v1", proxy.host());
        ok(hoist().args(["push", "-q", "--chunk-size", "1K", &format!("oci:{}:multi", layout.display()), &target]));
        let patches = proxy.count("PATCH", "/uploads/");
        assert!((64..400).contains(&patches), "PATCHes: {patches}");
        let pulled = ok(hoist().args(["digest", &format!("{}/{repository}:v1", registry.host())]));
        assert_eq!(pulled.trim(), ok(hoist().args(["digest", &format!("oci:{}:multi", layout.display())])).trim());
    }
    let proxy = Proxy::with_faults(registry.host(), |request| match request.method() {
        "PATCH" => Fault::Respond(Response::new("416 Requested Range Not Satisfiable", &["Range: 0-0"], b"")),
        _ => Fault::Forward,
    });
    let started = Instant::now();
    let error = fails_with(
        hoist()
            .args(["push", "-q", "--chunk-size", "1K", "--retries", "1"])
            .arg(format!("oci:{}:multi", layout.display()))
            .arg(format!("{}/team/refused:v1", proxy.host())),
        Some(75),
    );
    assert!(error.contains("no progress"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(proxy.count("PATCH", "/") < 100, "PATCHes: {}", proxy.count("PATCH", "/"));
}

/// 13 and 14: a base blob longer than its descriptor, a huge error body, a huge helper answer
/// and a manifest sent a byte at a time are all cut.
#[test]
fn reads_from_outside_are_bounded() {
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let config_digest = hoist::Digest::of(&config).to_string();
    let layer_digest = hoist::Digest::of(b"tiny").to_string();
    let manifest = json!({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":config_digest,"size":config.len()},
        "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":layer_digest,"size":4}]})
    .to_string();
    let (config_path, layer_path) = (format!("/blobs/{config_digest}"), format!("/blobs/{layer_digest}"));
    let hostile = registry_like(move |head| {
        let line = head.lines().next().unwrap_or_default();
        if line.contains("/manifests/") {
            Reply::Send(
                "200 OK".into(),
                vec!["Content-Type: application/vnd.oci.image.manifest.v1+json".into()],
                manifest.clone().into_bytes(),
            )
        } else if line.contains(&config_path) {
            Reply::Send("200 OK".into(), vec![], config.clone())
        } else if line.contains(&layer_path) {
            Reply::Flood(vec![], 200 << 20)
        } else if line.contains("/huge-error/") {
            Reply::Flood(vec![], 500 << 20)
        } else {
            Reply::json("404 Not Found", "{}")
        }
    });
    let work = tempfile::tempdir().unwrap();
    let app = work.path().join("app");
    fs::create_dir_all(&app).unwrap();
    fs::write(app.join("a"), "a").unwrap();
    let cache = work.path().join("cache");
    let started = Instant::now();
    let error = fails_with(
        hoist().env("XDG_CACHE_HOME", &cache).args([
            "build",
            "-q",
            "--platform",
            "linux/amd64",
            "--layer",
            &format!("{}:/a/", app.display()),
            "--base",
            &format!("{}/base/img:1", hostile.host()),
            "--output",
            &format!("oci:{}", work.path().join("out").display()),
        ]),
        Some(7),
    );
    assert!(error.contains("should have 4 bytes"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(20), "cut at the size, not read whole: {:?}", started.elapsed());
    assert!(!cache.join("hoist/blobs/sha256").join(layer_digest.trim_start_matches("sha256:")).exists());

    // A credential helper that answers 2 MB.
    let bin = work.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-big");
    fs::write(&helper, "#!/bin/sh\nhead -c 2000000 /dev/zero | tr '\\0' x\n").unwrap();
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let config_dir = work.path().join("docker");
    fs::create_dir_all(&config_dir).unwrap();
    fs::write(config_dir.join("config.json"), r#"{"credsStore":"big"}"#).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let auth = registry_like(|_| {
        Reply::Send("401 Unauthorized".into(), vec![r#"WWW-Authenticate: Basic realm="x""#.into()], b"{}".to_vec())
    });
    let error = fails_with(
        hoist()
            .env("PATH", path)
            .env("DOCKER_CONFIG", &config_dir)
            .args(["inspect", &format!("{}/a/b:c", auth.host())]),
        Some(4),
    );
    assert!(error.contains("more than"), "{error}");

    // A manifest sent one byte every 200 ms: cut by the document deadline.
    let slow = registry_like(|_| {
        Reply::Trickle(
            "200 OK".into(),
            vec!["Content-Type: application/vnd.oci.image.manifest.v1+json".into()],
            vec![b' '; 418],
            Duration::from_millis(200),
        )
    });
    let started = Instant::now();
    let error = fails_with(
        hoist().env("HOIST_DOCUMENT_TIMEOUT", "2").args(["inspect", &format!("{}/a/b:c", slow.host())]),
        Some(6),
    );
    assert!(started.elapsed() < Duration::from_secs(15), "{error}: {:?}", started.elapsed());
}

/// 17: text from the network reaches the terminal without control characters.
#[test]
fn registry_messages_cannot_drive_the_terminal() {
    let hostile = registry_like(|_| {
        Reply::json(
            "404 Not Found",
            "{\"errors\":[{\"code\":\"MANIFEST_UNKNOWN\",\"message\":\"\\u001b[2J\\u001b[31mhacked\\r\"}]}",
        )
    });
    let out = hoist().args(["inspect", &format!("{}/a/b:c", hostile.host())]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(!out.stderr.iter().any(|b| *b == 0x1b || *b == b'\r'), "{:?}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hacked"));
}

/// 19: docker's config directory is private and a symlinked config.json is written through;
/// layout files are readable by others (0644 under umask 022).
#[test]
fn files_get_the_modes_users_expect() {
    let secrets = tempfile::tempdir().unwrap();
    let registry = with_htpasswd(secrets.path(), &[("alice", "wonderland")]);
    let home = tempfile::tempdir().unwrap();
    let config_dir = home.path().join("new-docker");
    let mut login = hoist();
    login.env("DOCKER_CONFIG", &config_dir).args(["login", "-u", "alice", "--password-stdin", &registry.host()]);
    login.stdin(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"wonderland\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(fs::metadata(&config_dir).unwrap().permissions().mode() & 0o777, 0o700);

    let dotfiles = home.path().join("dotfiles");
    fs::create_dir_all(&dotfiles).unwrap();
    fs::write(dotfiles.join("docker.json"), r#"{"psFormat":"table"}"#).unwrap();
    let linked = home.path().join("linked");
    fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink(dotfiles.join("docker.json"), linked.join("config.json")).unwrap();
    let mut login = hoist();
    login.env("DOCKER_CONFIG", &linked).args(["login", "-u", "alice", "--password-stdin", &registry.host()]);
    login.stdin(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"wonderland\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(fs::symlink_metadata(linked.join("config.json")).unwrap().file_type().is_symlink(), "the link stays");
    let written: Value = serde_json::from_str(&fs::read_to_string(dotfiles.join("docker.json")).unwrap()).unwrap();
    assert_eq!(written["psFormat"], "table");
    assert!(written["auths"].get(registry.host()).is_some(), "{written}");

    let work = tempfile::tempdir().unwrap();
    let layout = layout_with_app(work.path());
    for entry in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let mode = entry.unwrap().metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o044, 0o044, "layout blobs are readable by others: {mode:o}");
    }
    assert_eq!(fs::metadata(layout.join("index.json")).unwrap().permissions().mode() & 0o044, 0o044);
}

/// Issue 21, 5: a registry that sends page after distinct page of valid tags is cut when the
/// pages together pass the listing bound, with a clean error; so is the catalog.
#[test]
fn listings_are_bounded_in_bytes_not_only_in_pages() {
    let page = |path: &str, field: &str| -> Reply {
        // Distinct pages of about 4 MB each, forty of them: 160 MB in all.
        let number: usize =
            path.rsplit("last=p").next().and_then(|n| n.split(['&', ' ']).next()?.parse().ok()).unwrap_or(0);
        let names: Vec<String> = (0..250_000).map(|i| format!("p{number}-{i:07}")).collect();
        let body = json!({ "name": "a/b", field: names }).to_string();
        let mut headers = vec!["Content-Type: application/json".to_owned()];
        if number < 40 {
            let next = match field {
                "tags" => format!("/v2/a/b/tags/list?n=1000&last=p{}", number + 1),
                _ => format!("/v2/_catalog?n=1000&last=p{}", number + 1),
            };
            headers.push(format!("Link: <{next}>; rel=\"next\""));
        }
        Reply::Send("200 OK".into(), headers, body.into_bytes())
    };
    let pages = registry_like(move |head| {
        let path = head.split_whitespace().nth(1).unwrap_or_default();
        match path.contains("/_catalog") {
            true => page(path, "repositories"),
            false => page(path, "tags"),
        }
    });
    let tags = fails_with(hoist().args(["tags", &format!("{}/a/b", pages.host())]), Some(7));
    assert!(tags.contains("the listing of repository") && tags.contains("larger than 33554432 bytes"), "{tags}");
    let catalog = fails_with(hoist().args(["catalog", &pages.host()]), Some(7));
    assert!(
        catalog.contains("the listing of the catalog") && catalog.contains("larger than 33554432 bytes"),
        "{catalog}"
    );
    let asked = pages.heads_with("/tags/list").len();
    assert!(asked < 12, "cut after the bound, not at the last page: {asked} pages");
}

/// Issue 21, 6: the referrers GET, `login`'s `GET /v2/` and `DELETE` have the document
/// deadline: a server that sends their answer a byte at a time is cut.
#[test]
fn referrers_login_and_delete_have_the_document_deadline() {
    let digest = format!("sha256:{}", "a".repeat(64));
    // Valid answers, head and body sent one byte every 200 ms: 30 s each, far past the 1 s
    // deadline (a status alone is all login and delete wait for).
    let trickle = |body: &str| {
        let body = format!("{body:<60}").into_bytes();
        let headers = vec!["Content-Type: application/json".into()];
        Reply::TrickleAll("200 OK".into(), headers, body, Duration::from_millis(200))
    };
    let referrers = registry_like(move |_| trickle(r#"{"schemaVersion":2,"manifests":[]}"#));
    let error = fails_with(
        hoist().env("HOIST_DOCUMENT_TIMEOUT", "1").args(["referrers", &format!("{}/a/b@{digest}", referrers.host())]),
        Some(6),
    );
    assert!(error.contains("did not answer in time"), "{error}");

    // The first GET /v2/ finds the registry; the second is login's check.
    let pings = std::sync::atomic::AtomicUsize::new(0);
    let login = Hostile::start(move |_| match pings.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
        0 => Reply::json("200 OK", "{}"),
        _ => trickle("{}"),
    });
    let config = tempfile::tempdir().unwrap();
    let error = fails_with(
        hoist().env("HOIST_DOCUMENT_TIMEOUT", "1").env("DOCKER_CONFIG", config.path()).args([
            "login",
            "-u",
            "alice",
            "-p",
            "pw",
            &login.host(),
        ]),
        Some(6),
    );
    assert!(error.contains("did not answer in time"), "{error}");
    assert_eq!(login.heads_with("GET /v2/").len(), 2);
    assert!(!config.path().join("config.json").exists(), "nothing stored");

    // A DELETE is retried: the first is cut by the deadline, the second answered at once.
    let deletes = std::sync::atomic::AtomicUsize::new(0);
    let delete = registry_like(move |_| match deletes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
        0 => trickle("{}"),
        _ => Reply::Send("202 Accepted".into(), vec![], vec![]),
    });
    let out = hoist()
        .env("HOIST_DOCUMENT_TIMEOUT", "1")
        .args(["delete", "--yes", &format!("{}/a/b@{digest}", delete.host())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("did not answer in time") && stderr.contains("retrying"), "{stderr}");
    assert_eq!(delete.heads_with("DELETE ").len(), 2, "{stderr}");

    // A blob download has no whole-request deadline, but its answer's head and an error
    // answer's body (documents both) do.
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{:x}", Sha256::digest(config)),
            "size": config.len(),
        },
        "layers": [],
    })
    .to_string();
    for status in ["200 OK", "500 Internal Server Error"] {
        let manifest = manifest.clone();
        let blobs = registry_like(move |head| match head.contains("/manifests/") {
            true => Reply::json("200 OK", &manifest),
            false if status.starts_with("200") => {
                Reply::TrickleAll(status.into(), vec![], config.to_vec(), Duration::from_millis(200))
            }
            false => Reply::Trickle(status.into(), vec![], vec![b' '; 150], Duration::from_millis(200)),
        });
        let error = fails_with(
            hoist().env("HOIST_DOCUMENT_TIMEOUT", "1").args([
                "inspect",
                "--config",
                &format!("{}/a/b:c", blobs.host()),
            ]),
            Some(6),
        );
        assert!(error.contains("did not answer in time"), "{status}: {error}");
    }
}

/// Issue 21, 8: a redirect loop is permanent: one attempt, its own message and exit code; a
/// chain of redirects is followed ten times at most.
#[test]
fn redirect_loops_stop_at_once() {
    let looping = registry_like(|head| {
        let path = head.split_whitespace().nth(1).unwrap_or_default();
        Reply::Send("307 Temporary Redirect".into(), vec![format!("Location: {path}")], vec![])
    });
    // `hoist tag` retries transient failures: the loop is not one.
    let error = fails_with(hoist().args(["tag", &format!("{}/a/b:c", looping.host()), "d"]), Some(6));
    let url = format!("http://{}/v2/a/b/manifests/c", looping.host());
    assert!(error.contains(&format!("redirects in a loop at {url}")) && error.contains("proxy"), "{error}");
    assert_eq!(looping.heads_with("/manifests/").len(), 1, "one request, no retries");

    let chain = registry_like(|head| {
        let path = head.split_whitespace().nth(1).unwrap_or_default();
        let hop: u32 = path.rsplit("hop=").next().and_then(|n| n.parse().ok()).unwrap_or(0);
        let next = format!("/v2/a/b/manifests/c?hop={}", hop + 1);
        Reply::Send("302 Found".into(), vec![format!("Location: {next}")], vec![])
    });
    let error = fails_with(hoist().args(["tag", &format!("{}/a/b:c", chain.host()), "d"]), Some(6));
    assert!(error.contains("more than 10 redirects"), "{error}");
    assert_eq!(chain.heads_with("/manifests/").len(), 11, "the request and ten redirects");
}

/// Issue 21, 2: a document served (or described) as an index that is an image manifest is
/// refused before anything is written (exit 7): not tagged into a layout as an empty index,
/// and not sent to a registry with a hint about `--format docker`. The same without a
/// mediaType in the body (its shape decides), and from a layout whose index.json lies.
#[test]
fn an_image_served_as_an_index_is_refused_and_nothing_is_written() {
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let layout = layout_with_app(work.path());
    ok(hoist().args([
        "push",
        "-q",
        &format!("oci:{}:single", layout.display()),
        &format!("{}/team/app:v1", registry.host()),
    ]));
    let proxy = Proxy::start(registry.host(), |line, response| {
        if line.contains("/manifests/") {
            response.set_header("Content-Type", INDEX);
        }
    });
    let source = format!("{}/team/app:v1", proxy.host());
    let copied = work.path().join("copied");
    let error = fails_with(hoist().args(["copy", "-q", &source, &format!("oci:{}:v1", copied.display())]), Some(7));
    assert!(error.contains(INDEX) && error.contains("its mediaType is application/vnd.oci.image.manifest"), "{error}");
    assert!(!copied.exists(), "nothing written: {:?}", crate::util::listing(work.path()));
    let error =
        fails_with(hoist().args(["copy", "-q", &source, &format!("{}/team/copy:v1", registry.host())]), Some(7));
    assert!(!error.contains("--format"), "{error}");
    let inspect = hoist().args(["inspect", &format!("{}/team/copy:v1", registry.host())]).output().unwrap();
    assert_eq!(inspect.status.code(), Some(5), "nothing tagged");

    // Without a mediaType in the body, its fields (config, layers) contradict the header.
    let image = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let hostile = registry_like(move |head| match head.starts_with("GET /v2/team/app/manifests/v1 ") {
        true => Reply::Send("200 OK".into(), vec![format!("Content-Type: {INDEX}")], image.to_vec()),
        false => Reply::json("404 Not Found", r#"{"errors":[{"code":"NOT_FOUND","message":"no"}]}"#),
    });
    let error = fails_with(
        hoist().args(["copy", "-q", &format!("{}/team/app:v1", hostile.host()), &format!("oci:{}", copied.display())]),
        Some(7),
    );
    assert!(error.contains(INDEX) && error.contains(r#"no "manifests""#), "{error}");
    assert!(!copied.exists());

    // A layout whose index.json calls an image manifest an index.
    let lying = work.path().join("lying");
    let manifest = read_json(&crate::util::blob_path(&layout, &first_manifest(&layout, "single")));
    commit_json(
        hoist::layout::LayoutWriter::begin(&lying).unwrap(),
        &manifest,
        oci_spec::image::MediaType::ImageIndex,
        "v1",
    );
    let error = fails_with(
        hoist().args(["push", "--dry-run", &format!("oci:{}:v1", lying.display()), "127.0.0.1:9/x:y"]),
        Some(7),
    );
    assert!(error.contains("announced as application/vnd.oci.image.index.v1+json"), "{error}");
}

/// Review of issue 21, 3 (the class of CVE-2021-41190): a document with `manifests` beside
/// `config` and `layers` is refused (exit 7) and nothing written, whether it has no mediaType
/// or says index, and whatever the Content-Type claims: it was copied as an empty index.
#[test]
fn a_document_both_index_and_image_is_refused_and_nothing_is_written() {
    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const IMAGE: &str = "application/vnd.oci.image.manifest.v1+json";
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let mut both = image_manifest(config, &[b"layer"]);
    both.as_object_mut().unwrap().remove("mediaType");
    both["manifests"] = json!([]);
    let mut typed = both.clone();
    typed["mediaType"] = json!(INDEX);
    let work = tempfile::tempdir().unwrap();
    for (document, content_type) in [(&both, INDEX), (&both, IMAGE), (&typed, INDEX)] {
        let body = document.to_string().into_bytes();
        let hostile = registry_like(move |head| match head.contains("/manifests/") {
            true => Reply::Send("200 OK".into(), vec![format!("Content-Type: {content_type}")], body.clone()),
            false => Reply::Send("200 OK".into(), vec![], config.to_vec()),
        });
        let out = work.path().join("out");
        let error = fails_with(
            hoist().args(["copy", "-q", &format!("{}/a/b:c", hostile.host()), &format!("oci:{}:c", out.display())]),
            Some(7),
        );
        assert!(error.contains(r#"both "manifests" and "config""#), "{content_type}: {error}");
        assert!(!out.exists(), "nothing written: {:?}", crate::util::listing(work.path()));
    }
}

/// The digest `tag` names in a layout's index.json.
fn first_manifest(layout: &Path, tag: &str) -> String {
    let index = read_json(&layout.join("index.json"));
    let entries = index["manifests"].as_array().unwrap();
    let entry = entries.iter().find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == tag).unwrap();
    entry["digest"].as_str().unwrap().to_owned()
}
