//! The XDG base directories hoist keeps its own files in: the cache, upload sessions and
//! local manifest lists. As the XDG Base Directory spec says, a variable that is unset, empty
//! or relative is ignored and the default under `$HOME` is used: hoist never writes relative
//! to the working directory because `XDG_CACHE_HOME=` was set to nothing.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// One of the XDG base directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseDir {
    /// `$XDG_CACHE_HOME`, else `$HOME/.cache`: what can be made again (blobs, records).
    Cache,
    /// `$XDG_STATE_HOME`, else `$HOME/.local/state`: what outlives a run (upload sessions).
    State,
    /// `$XDG_DATA_HOME`, else `$HOME/.local/share`: the user's own data (manifest lists).
    Data,
}

impl BaseDir {
    /// The environment variable that names it.
    pub fn variable(self) -> &'static str {
        match self {
            BaseDir::Cache => "XDG_CACHE_HOME",
            BaseDir::State => "XDG_STATE_HOME",
            BaseDir::Data => "XDG_DATA_HOME",
        }
    }

    fn under_home(self) -> &'static str {
        match self {
            BaseDir::Cache => ".cache",
            BaseDir::State => ".local/state",
            BaseDir::Data => ".local/share",
        }
    }

    fn what(self) -> &'static str {
        match self {
            BaseDir::Cache => "cache directory",
            BaseDir::State => "state directory",
            BaseDir::Data => "data directory",
        }
    }

    /// hoist's directory in it, `<base>/hoist`, from the environment; an error naming both
    /// variables when neither gives one.
    pub fn hoist_dir(self) -> Result<PathBuf> {
        resolve(self, std::env::var_os(self.variable()), std::env::var_os("HOME"))
            .map(|base| base.join("hoist"))
            .ok_or_else(|| Error::invalid(self.what(), "", format!("set HOME or {}", self.variable())))
    }
}

/// The base directory from the values of its variable and of `HOME`.
fn resolve(kind: BaseDir, variable: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    variable
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
        .or_else(|| home.map(|home| PathBuf::from(home).join(kind.under_home())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(text: &str) -> Option<OsString> {
        Some(OsString::from(text))
    }

    #[test]
    fn an_absolute_variable_is_used() {
        assert_eq!(resolve(BaseDir::Cache, some("/var/cache/me"), some("/home/me")), Some("/var/cache/me".into()));
    }

    #[test]
    fn an_unset_empty_or_relative_variable_falls_back_to_home() {
        for variable in [None, some(""), some("cache"), some("./state")] {
            assert_eq!(resolve(BaseDir::Cache, variable.clone(), some("/home/me")), Some("/home/me/.cache".into()));
            assert_eq!(
                resolve(BaseDir::State, variable.clone(), some("/home/me")),
                Some("/home/me/.local/state".into())
            );
            assert_eq!(resolve(BaseDir::Data, variable, some("/home/me")), Some("/home/me/.local/share".into()));
        }
    }

    #[test]
    fn without_home_only_an_absolute_variable_gives_a_directory() {
        assert_eq!(resolve(BaseDir::Data, some(""), None), None);
        assert_eq!(resolve(BaseDir::Data, some("/data"), None), Some("/data".into()));
    }
}
