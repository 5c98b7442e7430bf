//! Local manifest lists for `hoist manifest`, docker's workflow: one JSON file per list in
//! hoist's data directory (`$XDG_DATA_HOME/hoist/manifests`, else
//! `~/.local/share/hoist/manifests`), written atomically.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Entry;
use crate::error::{Error, IoContext, Result};
use crate::fsutil::atomic::{self, Mode};
use crate::fsutil::xdg::BaseDir;
use crate::model::MAX_MANIFEST_BYTES;

/// A list being put together before `hoist manifest push`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LocalList {
    /// The list's reference, as given.
    pub name: String,
    /// Its entries.
    pub entries: Vec<Entry>,
}

/// Where local lists live.
#[derive(Clone, Debug)]
pub struct ListStore {
    dir: PathBuf,
}

impl ListStore {
    /// The store in hoist's data directory.
    pub fn from_environment() -> Result<ListStore> {
        Ok(ListStore { dir: BaseDir::Data.hoist_dir()?.join("manifests") })
    }

    /// A store in `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> ListStore {
        ListStore { dir: dir.into() }
    }

    fn path(&self, name: &str) -> PathBuf {
        let file: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
        self.dir.join(format!("{file}.json"))
    }

    /// The list `name`, if there is one.
    pub fn load(&self, name: &str) -> Result<Option<LocalList>> {
        let path = self.path(name);
        let bytes = crate::fsutil::small_file::read_optional(&path, MAX_MANIFEST_BYTES, "local manifest list")?;
        let Some(bytes) = bytes else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::invalid(
                "local manifest list",
                path.display().to_string(),
                format!("it is damaged ({e}); remove it with `hoist manifest rm {name}`"),
            )
        })
    }

    /// Saves a list (temporary file, then rename).
    pub fn save(&self, list: &LocalList) -> Result<()> {
        std::fs::create_dir_all(&self.dir).at("create", &self.dir)?;
        let path = self.path(&list.name);
        let bytes =
            serde_json::to_vec_pretty(list).map_err(|source| Error::Json { what: list.name.clone(), source })?;
        atomic::write(&path, &bytes, Mode::Private)
    }

    /// Removes a list; whether it existed.
    pub fn remove(&self, name: &str) -> Result<bool> {
        let path = self.path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", &path, e)),
        }
    }
}
