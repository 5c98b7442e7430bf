//! Build settings as a user writes them, in a build file (`hoist.toml`) or as flags.
//!
//! [`BuildSpec`] is the one list of settings. The CLI fills one from its flags, [`BuildSpec::load`]
//! one from a file, [`BuildSpec::or`] lets the flags win, and [`BuildSpec::into_options`] checks
//! and converts the result into [`BuildOptions`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::build::{source_date_epoch, BuildOptions, LayerSource};
use crate::config::{parse_key_value, ImageSettings};
use crate::error::{Error, Result};
use crate::layer::TarOptions;
use crate::location::Location;

/// The largest build file hoist reads.
pub const MAX_BUILD_FILE_BYTES: u64 = 1 << 20;

/// Every build setting, each optional so that flags and a build file can be merged.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct BuildSpec {
    /// `os/arch[/variant]` per platform.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// `SRC[:DEST]` per layer.
    #[serde(default)]
    pub layers: Vec<String>,
    /// Exclusion patterns.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// `oci:DIR[:TAG]`.
    pub output: Option<String>,
    /// Entrypoint argv.
    pub entrypoint: Option<Vec<String>>,
    /// Cmd argv.
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` entries.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory.
    pub workdir: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Exposed ports.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Volumes.
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations on manifests and the index.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Stop signal.
    pub stop_signal: Option<String>,
    /// `gzip`, `zstd` or `none`.
    pub compression: Option<String>,
    /// Compression level.
    pub compression_level: Option<u32>,
    /// Entry mtime in seconds.
    pub mtime: Option<u64>,
    /// Keep files' own mtimes.
    pub preserve_mtime: Option<bool>,
    /// `UID:GID` for every entry.
    pub owner: Option<String>,
    /// Skip special files with a warning.
    pub skip_special: Option<bool>,
    /// Record modes as git does: files 0644 or 0755 by their owner-execute bit, directories
    /// 0755, whatever the umask of the checkout.
    pub normalize_modes: Option<bool>,
    /// Write a plain manifest, not an index.
    pub no_index: Option<bool>,
    /// Base image (a registry reference or `oci:DIR[:TAG]`); scratch when absent.
    pub base: Option<String>,
    /// Directory that relative layer sources are relative to: the build file's, when the
    /// layers come from one; else the caller's working directory.
    #[serde(skip)]
    pub context: Option<PathBuf>,
}

impl BuildSpec {
    /// Reads a build file. Relative paths in it (layer sources, output) are taken relative to
    /// the file's directory, so the file works from any working directory.
    pub fn load(path: &Path) -> Result<BuildSpec> {
        let cannot = |message: String| Error::BuildFile { path: path.to_path_buf(), message };
        let bytes = crate::fsutil::small_file::read(path, MAX_BUILD_FILE_BYTES)
            .map_err(|e| cannot(format!("cannot read it: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|_| cannot("it is not UTF-8 text".into()))?;
        let mut spec: BuildSpec = toml::from_str(&text).map_err(|e| Error::BuildFile {
            path: path.to_path_buf(),
            message: e.message().to_owned() + &line_of(&text, e.span()),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        spec.context = Some(base.to_path_buf());
        if let Some(output) = &spec.output {
            spec.output = Some(output.parse::<Location>()?.relative_to(base).to_string());
        }
        Ok(spec)
    }

    /// Field by field, the value in `self` where set, else the one in `fallback`.
    pub fn or(self, fallback: BuildSpec) -> BuildSpec {
        fn list<T>(mine: Vec<T>, theirs: Vec<T>) -> Vec<T> {
            if mine.is_empty() {
                theirs
            } else {
                mine
            }
        }
        fn map(mut theirs: BTreeMap<String, String>, mine: BTreeMap<String, String>) -> BTreeMap<String, String> {
            theirs.extend(mine);
            theirs
        }
        BuildSpec {
            platforms: list(self.platforms, fallback.platforms),
            exclude: list(self.exclude, fallback.exclude),
            output: self.output.or(fallback.output),
            entrypoint: self.entrypoint.or(fallback.entrypoint),
            cmd: self.cmd.or(fallback.cmd),
            env: list(self.env, fallback.env),
            workdir: self.workdir.or(fallback.workdir),
            user: self.user.or(fallback.user),
            ports: list(self.ports, fallback.ports),
            volumes: list(self.volumes, fallback.volumes),
            labels: map(fallback.labels, self.labels),
            annotations: map(fallback.annotations, self.annotations),
            stop_signal: self.stop_signal.or(fallback.stop_signal),
            compression: self.compression.or(fallback.compression),
            compression_level: self.compression_level.or(fallback.compression_level),
            mtime: self.mtime.or(fallback.mtime),
            preserve_mtime: self.preserve_mtime.or(fallback.preserve_mtime),
            owner: self.owner.or(fallback.owner),
            skip_special: self.skip_special.or(fallback.skip_special),
            normalize_modes: self.normalize_modes.or(fallback.normalize_modes),
            no_index: self.no_index.or(fallback.no_index),
            base: self.base.or(fallback.base),
            context: match self.layers.is_empty() {
                true => fallback.context,
                false => self.context,
            },
            layers: list(self.layers, fallback.layers),
        }
    }

    /// Checks every value and converts to build options and the output location, if any.
    ///
    /// Timestamps default to `$SOURCE_DATE_EPOCH`, else 0 (1970-01-01).
    pub fn into_options(self, context: &Path) -> Result<(BuildOptions, Option<Location>)> {
        let output = self.output.as_deref().map(str::parse::<Location>).transpose()?;
        if let Some(output) = &output {
            output.check_output()?;
        }
        let epoch = source_date_epoch()?.unwrap_or(0);
        let (uid, gid) = match &self.owner {
            Some(owner) => parse_owner(owner)?,
            None => (0, 0),
        };
        let options = BuildOptions {
            platforms: self.platforms.iter().map(|p| p.parse()).collect::<Result<_>>()?,
            layers: self.layers.iter().map(|l| l.parse::<LayerSource>()).collect::<Result<_>>()?,
            context: self.context.unwrap_or_else(|| context.to_path_buf()),
            excludes: self.exclude,
            tar: TarOptions {
                mtime: crate::config::check_timestamp("--mtime", self.mtime.unwrap_or(epoch))?,
                preserve_mtime: self.preserve_mtime.unwrap_or(false),
                uid,
                gid,
                skip_special: self.skip_special.unwrap_or(false),
                normalize_modes: self.normalize_modes.unwrap_or(false),
            },
            compression: self.compression.as_deref().unwrap_or("gzip").parse()?,
            compression_level: self.compression_level,
            image: ImageSettings {
                entrypoint: self.entrypoint,
                cmd: self.cmd,
                env: self.env,
                workdir: self.workdir,
                user: self.user,
                ports: self.ports,
                volumes: self.volumes,
                labels: self.labels,
                stop_signal: self.stop_signal,
            },
            annotations: self.annotations,
            created: epoch,
            no_index: self.no_index.unwrap_or(false),
            base: BTreeMap::new(),
            base_files: BTreeMap::new(),
            cache: None,
            written: None,
        };
        Ok((options, output))
    }
}

/// Parses `KEY=VALUE` entries into a map (labels, annotations given as flags).
pub fn key_values(what: &'static str, entries: &[String]) -> Result<BTreeMap<String, String>> {
    entries.iter().map(|e| parse_key_value(what, e)).collect()
}

fn parse_owner(owner: &str) -> Result<(u64, u64)> {
    let parsed = owner.split_once(':').and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)));
    parsed.ok_or_else(|| Error::invalid("owner", owner, "expected numeric UID:GID, e.g. 0:0 or 65532:65532"))
}

/// " at line N" for a parser error span.
fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    span.map(|s| {
        let line = text.as_bytes()[..s.start.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1;
        format!(" (line {line})")
    })
    .unwrap_or_default()
}

/// The directory a relative path in `spec` is resolved against when it came from flags.
pub fn current_dir() -> Result<PathBuf> {
    std::env::current_dir().map_err(|e| Error::io("read", "the current directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
platforms = ["linux/amd64", "linux/arm64"]
layers = ["dist/{os}_{arch}/:/app/"]
output = "oci:out/layout:v1"
entrypoint = ["/app/server"]
env = ["PORT=8080"]
compression = "zstd"
normalize-modes = true
labels = { "org.opencontainers.image.source" = "https://example.com/repo" }
"#;

    #[test]
    fn build_file_paths_are_relative_to_the_file_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hoist.toml");
        std::fs::write(&path, FILE).unwrap();
        let from_file = BuildSpec::load(&path).unwrap();
        assert_eq!(from_file.layers, ["dist/{os}_{arch}/:/app/"]);
        assert_eq!(from_file.context.as_deref(), Some(dir.path()));
        let flags = BuildSpec {
            compression: Some("gzip".into()),
            labels: [("extra".to_owned(), "1".to_owned())].into(),
            ..Default::default()
        };
        let merged = flags.or(from_file);
        assert_eq!(merged.compression.as_deref(), Some("gzip"));
        assert_eq!(merged.platforms.len(), 2);
        assert_eq!(merged.labels.len(), 2);
        let (options, output) = merged.into_options(Path::new("/elsewhere")).unwrap();
        assert_eq!(options.platforms.len(), 2);
        assert!(options.tar.normalize_modes, "normalize-modes from the file");
        assert_eq!(options.context, dir.path(), "layers from the file are relative to it");
        assert_eq!(
            output,
            Some(Location::Layout { dir: dir.path().join("out/layout"), tag: Some("v1".into()), digest: None })
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_reported_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hoist.toml");
        std::fs::write(&path, "platforms = [\"linux/amd64\"]\nentrypont = [\"/x\"]\n").unwrap();
        let err = BuildSpec::load(&path).unwrap_err().to_string();
        assert!(err.contains("hoist.toml") && err.contains("entrypont") && err.contains("line 2"), "{err}");
        assert!(parse_owner("root:root").is_err());
        assert_eq!(parse_owner("65532:65532").unwrap(), (65532, 65532));
    }
}
