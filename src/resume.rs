//! Upload sessions remembered across processes, so that a push or copy killed from outside (a
//! job timeout, a cancelled workflow, Ctrl-C) continues in the next run instead of sending
//! every unfinished blob from byte 0.
//!
//! One small JSON file per upload under `$XDG_STATE_HOME/hoist/uploads/` (mode 0600, never
//! credentials): the registry, repository, digest, session URL and the bytes the registry
//! confirmed. It is written atomically after each accepted chunk and removed when the blob is
//! committed. A run claims a file by renaming it to a name with its own process id, so two
//! runs never drive one session; files older than a day are removed. The registry stays the
//! judge: a saved session is only continued from the offset the registry reports for it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, IoContext};
use crate::fsutil::atomic::{self, Mode};
use crate::fsutil::xdg::BaseDir;

/// State files older than this are removed.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Appended to the records' directory's name for the one beside it where a record is written
/// before it is renamed into place.
const PARTIAL_SUFFIX: &str = ".partial";

/// What is remembered of one upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// The registry (`host[:port]`).
    pub registry: String,
    /// The repository.
    pub repository: String,
    /// The blob.
    pub digest: Digest,
    /// The session URL the registry gave last.
    pub url: String,
    /// Bytes the registry confirmed.
    pub confirmed: u64,
}

/// The directory of saved upload sessions.
#[derive(Clone, Debug)]
pub struct Sessions {
    dir: PathBuf,
}

impl Sessions {
    /// The store in `$XDG_STATE_HOME/hoist/uploads` (else `~/.local/state/hoist/uploads`);
    /// `None` when neither variable gives a directory (see [`BaseDir`]).
    pub fn from_environment() -> Option<Sessions> {
        Some(Sessions::at(BaseDir::State.hoist_dir().ok()?.join("uploads")))
    }

    /// A store in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Sessions {
        Sessions { dir: dir.into() }
    }

    /// The file name stem for an upload: a hash of registry, repository and digest.
    pub fn key(registry: &str, repository: &str, digest: &Digest) -> String {
        let hash = Sha256::digest(format!("{registry}\n{repository}\n{digest}").as_bytes());
        hash.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    fn mine(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}-{}.json", std::process::id()))
    }

    /// Takes over a saved session for this upload, if another run left one (a run that is
    /// still alive keeps its own). Files for another upload, broken ones and old ones are
    /// removed or ignored.
    pub fn claim(&self, registry: &str, repository: &str, digest: &Digest) -> Option<Saved> {
        let key = Sessions::key(registry, repository, digest);
        let entries = std::fs::read_dir(&self.dir).ok()?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix(&format!("{key}-")).and_then(|r| r.strip_suffix(".json")) else {
                continue;
            };
            if pid.parse::<u32>().is_ok_and(|pid| pid != std::process::id() && alive(pid)) {
                continue;
            }
            let claimed = self.mine(&key);
            if std::fs::rename(entry.path(), &claimed).is_err() {
                continue;
            }
            match read(&claimed) {
                Some(saved)
                    if saved.registry == registry && saved.repository == repository && saved.digest == *digest =>
                {
                    return Some(saved)
                }
                _ => {
                    let _ = std::fs::remove_file(&claimed);
                }
            }
        }
        None
    }

    /// Remembers the session (after an accepted chunk); best effort.
    pub fn save(&self, saved: &Saved) {
        let key = Sessions::key(&saved.registry, &saved.repository, &saved.digest);
        if let Err(e) = self.write(&self.mine(&key), saved) {
            tracing::debug!("cannot remember the upload of {}: {e}", saved.digest);
        }
    }

    fn write(&self, path: &Path, saved: &Saved) -> crate::Result<()> {
        std::fs::create_dir_all(&self.dir).at("create", &self.dir)?;
        let _ = std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700));
        let bytes =
            serde_json::to_vec(saved).map_err(|source| Error::Json { what: "upload session".into(), source })?;
        // Written beside the records, not among them: a run killed mid-write leaves its partial
        // file there, where `clean` takes it away, never where a record is looked for.
        let partial = self.partial_dir();
        std::fs::create_dir_all(&partial).at("create", &partial)?;
        let mut file = atomic::temp_in(&partial, Mode::Private)?;
        std::io::Write::write_all(&mut file, &bytes).at("write", path)?;
        atomic::persist(file, path)
    }

    /// Forgets this run's session for the upload (the blob is committed, or present).
    pub fn forget(&self, registry: &str, repository: &str, digest: &Digest) {
        let _ = std::fs::remove_file(self.mine(&Sessions::key(registry, repository, digest)));
    }

    /// Removes records older than [`MAX_AGE`], and partial files a killed run left (older
    /// than a minute: a live run's is renamed into place at once).
    pub fn clean(&self) {
        remove_older(&self.dir, MAX_AGE);
        remove_older(&self.partial_dir(), Duration::from_secs(60));
    }

    fn partial_dir(&self) -> PathBuf {
        let mut name = self.dir.clone().into_os_string();
        name.push(PARTIAL_SUFFIX);
        PathBuf::from(name)
    }
}

/// Removes the files in `dir` last changed more than `age` ago.
fn remove_older(dir: &Path, age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|at| now.duration_since(at).is_ok_and(|elapsed| elapsed > age));
        if old && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Whether a process with this id runs on this machine.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The session saved at `path`; `None` unless it is a small regular file holding one.
fn read(path: &Path) -> Option<Saved> {
    serde_json::from_slice(&crate::fsutil::small_file::read_unlinked(path, 16 << 10).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_written_beside_the_records_and_partial_files_left_by_a_kill_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = Sessions::at(dir.path().join("uploads"));
        sessions.save(&saved("r:5000"));
        let records = || std::fs::read_dir(dir.path().join("uploads")).unwrap().count();
        assert_eq!(records(), 1, "only the record among the records");
        // What a run killed between writing and renaming leaves, an hour ago.
        let partial = dir.path().join("uploads.partial/.hoist-left");
        let file = std::fs::File::create(&partial).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(3600)).unwrap();
        sessions.clean();
        assert!(!partial.exists(), "a partial file of a killed run is taken away");
        assert_eq!(records(), 1, "the record stays");
    }

    fn saved(registry: &str) -> Saved {
        Saved {
            registry: registry.into(),
            repository: "team/app".into(),
            digest: Digest::of(b"blob"),
            url: "http://r/v2/team/app/blobs/uploads/x".into(),
            confirmed: 42,
        }
    }

    #[test]
    fn a_saved_session_is_claimed_once_and_only_for_its_upload() {
        let dir = tempfile::tempdir().unwrap();
        let sessions = Sessions::at(dir.path());
        let digest = Digest::of(b"blob");
        // Left by a run that is gone (a pid that cannot be alive).
        let key = Sessions::key("r:5000", "team/app", &digest);
        std::fs::write(
            dir.path().join(format!("{key}-4294967295.json")),
            serde_json::to_vec(&saved("r:5000")).unwrap(),
        )
        .unwrap();
        assert_eq!(sessions.claim("r:5000", "team/app", &digest), Some(saved("r:5000")));
        assert_eq!(sessions.claim("other:5000", "team/app", &digest), None, "another registry's upload");
        sessions.forget("r:5000", "team/app", &digest);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        // A file under this upload's name that holds another registry's session is ignored.
        std::fs::write(
            dir.path().join(format!("{key}-4294967295.json")),
            serde_json::to_vec(&saved("evil:1")).unwrap(),
        )
        .unwrap();
        assert_eq!(sessions.claim("r:5000", "team/app", &digest), None);
        sessions.save(&saved("r:5000"));
        let mode =
            std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().metadata().unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
