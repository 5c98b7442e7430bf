//! The library's error type: one enum, each variant naming the thing at fault and the fix.

use std::path::{Path, PathBuf};

/// What went wrong in hoist's library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What hoist was doing ("read", "write", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A layer source does not exist for a platform.
    #[error("layer source {} does not exist for platform {platform}; check --layer and that the build produced it", path.display())]
    SourceMissing {
        /// The expanded source path.
        path: PathBuf,
        /// The platform it was expanded for.
        platform: String,
    },
    /// A socket, fifo or device file was found in a layer source.
    #[error("{} is a {kind}, which cannot go into a layer; remove it, exclude it with --exclude, or pass --skip-special", path.display())]
    SpecialFile {
        /// The offending path.
        path: PathBuf,
        /// What kind of special file it is.
        kind: &'static str,
    },
    /// A file changed size while it was being archived.
    #[error("{} changed while it was being read; rerun once the build that writes it has finished", path.display())]
    FileChanged {
        /// The file.
        path: PathBuf,
    },
    /// A user-supplied value is not valid.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// Which kind of value ("platform", "env entry", ...).
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it is invalid and how to fix it.
        reason: String,
    },
    /// The output path exists but is not an OCI image layout.
    #[error("{} exists and is not an OCI image layout ({reason}); choose a new or empty directory", path.display())]
    NotALayout {
        /// The output path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An OCI layout on disk is damaged.
    #[error("OCI layout {} is corrupt: {reason}", path.display())]
    CorruptLayout {
        /// The layout's root.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Content did not hash to the digest it was expected to have.
    #[error("digest mismatch for {what}: expected {expected}, found {found}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The expected digest.
        expected: String,
        /// The digest of the content.
        found: String,
    },
    /// The build file could not be read or parsed.
    #[error("build file {}: {message}", path.display())]
    BuildFile {
        /// The build file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A JSON document could not be encoded or decoded.
    #[error("JSON for {what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A docker credential helper failed.
    #[error("credential helper {helper} failed: {message}")]
    CredentialHelper {
        /// The helper program.
        helper: String,
        /// What it said.
        message: String,
    },
    /// Transient failures went on after every retry; a later rerun may succeed.
    #[error(
        "{what}: still failing after {attempts} attempts, giving up ({last}); rerun the command to finish the job"
    )]
    RetriesExhausted {
        /// What was being done.
        what: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        last: Box<Error>,
    },
    /// Talking to a registry failed.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// An OCI document could not be assembled.
    #[error("building the OCI {what}: {source}")]
    Spec {
        /// Which document.
        what: &'static str,
        /// The oci-spec error.
        #[source]
        source: oci_spec::OciSpecError,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error at `path` while doing `action`.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { action, path: path.as_ref().to_path_buf(), source }
    }

    /// An invalid user-supplied value.
    pub fn invalid(what: &'static str, value: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid { what, value: value.into(), reason: reason.into() }
    }
}

/// Attaches a path and an action to I/O results.
pub(crate) trait IoContext<T> {
    /// Turns an `io::Error` into [`Error::Io`] naming `path`.
    fn at(self, action: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, action: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}
