//! The library's errors: [`Error`], each variant naming the thing at fault and the fix, with
//! registry failures in [`RegistryError`]; and [`Error::exit_code`], the one mapping from an
//! error to the command line's exit code.

pub mod registry;

pub use self::registry::RegistryError;

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
    /// A path given as an OCI image layout exists but is not one.
    #[error("{} exists and is not an OCI image layout ({reason}); {}", path.display(), match output {
        true => "choose a new or empty directory",
        false => "check the path: a layout is a directory with oci-layout and index.json",
    })]
    NotALayout {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// Whether it was to be written (the fix is another directory) or read.
        output: bool,
    },
    /// An OCI layout on disk is damaged.
    #[error("OCI layout {} is corrupt: {reason}", path.display())]
    CorruptLayout {
        /// The layout's root.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An image archive (oci-archive or docker-archive tar) is damaged or incomplete.
    #[error("archive {} is corrupt: {reason}", path.display())]
    CorruptArchive {
        /// The tar file.
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
    /// Content is longer or shorter than its descriptor says.
    #[error("{what} should have {expected} bytes, found {found}; refusing it")]
    SizeMismatch {
        /// What was read.
        what: String,
        /// The size its descriptor gives.
        expected: u64,
        /// What was found.
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
    Registry(#[from] RegistryError),
    /// Content of a kind hoist cannot handle where it was found.
    #[error("{what} has media type {media_type:?}, which hoist cannot use there")]
    Unsupported {
        /// What was read.
        what: String,
        /// Its media type.
        media_type: String,
    },
    /// A manifest or index read from a layout or a registry is not a valid document (a size
    /// that is negative or not a number, a malformed digest, a missing field).
    #[error("{what} is not a valid OCI document ({reason}); refusing it")]
    Malformed {
        /// What was read.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// An index has no image for the platform asked for.
    #[error("{what} has no {platform} image; it has: {available}")]
    PlatformNotFound {
        /// The index.
        what: String,
        /// The platform asked for.
        platform: String,
        /// The platforms it has, comma-separated.
        available: String,
    },
    /// Content nests deeper than hoist follows (an index of indexes of …).
    #[error("{what} nests indexes more than {limit} deep; refusing it")]
    TooDeep {
        /// Where the walk started.
        what: String,
        /// The depth limit.
        limit: usize,
    },
    /// Other writers kept replacing a tag hoist was amending.
    #[error("other writers kept replacing {what}; gave up after {tries} tries; rerun the command to finish the job")]
    Contention {
        /// The tag.
        what: String,
        /// Read-merge-write rounds tried.
        tries: u32,
    },
    /// A registry refused the user name and password given to `hoist login`.
    #[error("registry {registry} refused the user name {username:?} or its password ({message}); check both (a token needs the registry's read scope)")]
    LoginRefused {
        /// `host[:port]`.
        registry: String,
        /// The user name tried.
        username: String,
        /// The registry's message.
        message: String,
    },
    /// A request hoist will not carry out as given (an index where an image is needed, a local
    /// list that already exists): the message says why and what to do instead.
    #[error("{message}")]
    Refused {
        /// Why, and what to do.
        message: String,
    },
    /// The run was stopped by a signal (or [`crate::cancel::Cancel::request`]): nothing new
    /// started, what was in flight had the grace to finish, and no tag moved.
    #[error("{}", crate::cancel::describe(*stop, unfinished))]
    Interrupted {
        /// What stopped it.
        stop: crate::cancel::Stop,
        /// Blobs under way, with what the registry confirmed of each.
        unfinished: Vec<crate::cancel::Unfinished>,
    },
}

/// Exit codes, by what the user should do (README, "Errors and exit codes").
pub mod exit {
    /// Anything else: read the message.
    pub const OTHER: u8 = 1;
    /// Usage errors (clap's own code).
    pub const USAGE: u8 = 2;
    /// Bad input: fix the reference, platform, flag value, build file or layout path.
    pub const BAD_INPUT: u8 = 3;
    /// Authentication or permission: log in.
    pub const AUTH: u8 = 4;
    /// Not found: check the name and tag.
    pub const NOT_FOUND: u8 = 5;
    /// Network: host, port, TLS.
    pub const NETWORK: u8 = 6;
    /// Integrity: the source is broken or lying.
    pub const INTEGRITY: u8 = 7;
    /// Temporary: rerun the same command.
    pub const TEMPORARY: u8 = 75;
}

impl Error {
    /// A [`Error::Refused`] saying `message`.
    pub fn refused(message: impl Into<String>) -> Error {
        Error::Refused { message: message.into() }
    }

    /// The exit code for this error: what kind of fix it needs.
    pub fn exit_code(&self) -> u8 {
        use RegistryError as R;
        match self {
            Error::Invalid { .. }
            | Error::SourceMissing { .. }
            | Error::SpecialFile { .. }
            | Error::NotALayout { .. }
            | Error::BuildFile { .. }
            | Error::PlatformNotFound { .. } => exit::BAD_INPUT,
            Error::CredentialHelper { .. } | Error::LoginRefused { .. } => exit::AUTH,
            Error::DigestMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::CorruptLayout { .. }
            | Error::CorruptArchive { .. }
            | Error::TooDeep { .. }
            | Error::Malformed { .. } => exit::INTEGRITY,
            Error::RetriesExhausted { .. } | Error::Contention { .. } => exit::TEMPORARY,
            Error::Registry(error) => match error {
                R::Unauthorized { .. } | R::ForeignChallenge { .. } | R::Denied { .. } => exit::AUTH,
                R::NotFound { .. } => exit::NOT_FOUND,
                R::Connect { .. }
                | R::Unreachable { .. }
                | R::Resolve { .. }
                | R::Tls { .. }
                | R::PlainHttp { .. }
                | R::InsecureRedirect { .. }
                | R::RedirectLoop { .. }
                | R::Timeout { .. }
                | R::Stalled { .. } => exit::NETWORK,
                R::TooLarge { .. } => exit::INTEGRITY,
                R::TooManyRequests { .. } | R::NoProgress { .. } => exit::TEMPORARY,
                R::Status { .. } => exit::OTHER,
            },
            Error::Io { .. }
            | Error::FileChanged { .. }
            | Error::Json { .. }
            | Error::Unsupported { .. }
            | Error::Refused { .. } => exit::OTHER,
            Error::Interrupted { stop, .. } => stop.exit_code(),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(error: RegistryError) -> Error {
        Error::Registry(error)
    }

    /// Every kind of error, with the exit code README's table gives it.
    #[test]
    fn every_error_kind_has_its_exit_code() {
        let r = || "r".to_owned();
        let s = || "s".to_owned();
        let io = || std::io::Error::other("x");
        let json = || serde_json::from_str::<u8>("x").unwrap_err();
        let table: Vec<(Error, u8)> = vec![
            (Error::io("read", "/x", io()), 1),
            (Error::SourceMissing { path: "/x".into(), platform: s() }, 3),
            (Error::SpecialFile { path: "/x".into(), kind: "fifo" }, 3),
            (Error::FileChanged { path: "/x".into() }, 1),
            (Error::invalid("platform", "x", "y"), 3),
            (Error::NotALayout { path: "/x".into(), reason: s(), output: true }, 3),
            (Error::CorruptLayout { path: "/x".into(), reason: s() }, 7),
            (Error::CorruptArchive { path: "/x".into(), reason: s() }, 7),
            (Error::DigestMismatch { what: s(), expected: s(), found: s() }, 7),
            (Error::SizeMismatch { what: s(), expected: 1, found: s() }, 7),
            (Error::BuildFile { path: "/x".into(), message: s() }, 3),
            (Error::Json { what: s(), source: json() }, 1),
            (Error::CredentialHelper { helper: s(), message: s() }, 4),
            (Error::LoginRefused { registry: r(), username: s(), message: s() }, 4),
            (Error::RetriesExhausted { what: s(), attempts: 7, last: Box::new(Error::invalid("a", "b", "c")) }, 75),
            (Error::Unsupported { what: s(), media_type: s() }, 1),
            (Error::PlatformNotFound { what: s(), platform: s(), available: s() }, 3),
            (Error::TooDeep { what: s(), limit: 8 }, 7),
            (Error::Malformed { what: s(), reason: s() }, 7),
            (Error::Contention { what: s(), tries: 10 }, 75),
            (Error::Interrupted { stop: crate::cancel::Stop::Interrupt, unfinished: Vec::new() }, 130),
            (Error::Interrupted { stop: crate::cancel::Stop::Terminate, unfinished: Vec::new() }, 143),
            (registry(RegistryError::Connect { registry: r(), detail: s() }), 6),
            (registry(RegistryError::Resolve { registry: r(), detail: s() }), 6),
            (registry(RegistryError::Unreachable { registry: r(), detail: s() }), 6),
            (registry(RegistryError::Tls { registry: r(), detail: s() }), 6),
            (registry(RegistryError::PlainHttp { registry: r() }), 6),
            (registry(RegistryError::InsecureRedirect { registry: r(), from: s(), to: s() }), 6),
            (registry(RegistryError::RedirectLoop { registry: r(), url: s(), limit: 10 }), 6),
            (registry(RegistryError::Timeout { registry: r(), detail: s() }), 6),
            (registry(RegistryError::Stalled { registry: r(), seconds: 1 }), 6),
            (registry(RegistryError::Unauthorized { registry: r(), scope: s(), message: s() }), 4),
            (registry(RegistryError::ForeignChallenge { registry: r(), origin: s() }), 4),
            (registry(RegistryError::Denied { registry: r(), scope: s(), message: s() }), 4),
            (registry(RegistryError::NotFound { registry: r(), what: s(), message: s() }), 5),
            (registry(RegistryError::TooManyRequests { registry: r(), retry_after: None, message: s() }), 75),
            (registry(RegistryError::TooLarge { registry: r(), what: s(), limit: 1 }), 7),
            (registry(RegistryError::NoProgress { registry: r(), what: s() }), 75),
            (registry(RegistryError::Status { registry: r(), status: 500, request: s(), message: s() }), 1),
        ];
        for (error, code) in &table {
            assert_eq!(error.exit_code(), *code, "{error}");
        }
        assert_eq!(table.len(), 39, "one row per kind (two for Interrupted)");
    }
}
