//! Exclusion patterns with `.dockerignore` semantics: `.hoistignore` files and `--exclude`.
//!
//! Patterns are matched against paths relative to the layer source, with `/` separators. A
//! pattern also excludes everything below a directory it matches. Patterns starting with `!`
//! re-include. The last pattern that matches a path (or one of its parent directories) decides.

use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result};

/// The name of the exclusion file read from the root of a layer source.
pub const IGNORE_FILE: &str = ".hoistignore";
/// The largest `.hoistignore` hoist reads.
pub const MAX_IGNORE_BYTES: u64 = 1 << 20;

/// A compiled, ordered list of exclusion patterns.
#[derive(Debug, Clone)]
pub struct Excludes {
    set: GlobSet,
    negated: Vec<bool>,
}

impl Excludes {
    /// Compiles patterns in `.dockerignore` syntax, in order; `!` negates.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Excludes> {
        let mut builder = GlobSetBuilder::new();
        let mut negated = Vec::new();
        for raw in patterns {
            let raw = raw.as_ref().trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            let (negate, pattern) = match raw.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, raw),
            };
            let pattern = clean(pattern);
            if pattern.is_empty() {
                continue;
            }
            let glob = GlobBuilder::new(&pattern)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::invalid("exclude pattern", shown(&pattern), e.kind().to_string()))?;
            builder.add(glob);
            negated.push(negate);
        }
        let set = builder.build().map_err(|e| Error::invalid("exclude pattern", "", e.to_string()))?;
        Ok(Excludes { set, negated })
    }

    /// Reads `root/.hoistignore` (when present) followed by the `extra` patterns. The file
    /// must be a regular file itself: a symlink, which could point outside the source, is
    /// refused.
    pub fn for_source<S: AsRef<str>>(root: &Path, extra: &[S]) -> Result<Excludes> {
        let file = root.join(IGNORE_FILE);
        let bytes = match crate::fsutil::small_file::read_unlinked(&file, MAX_IGNORE_BYTES) {
            Ok(bytes) => bytes,
            Err(e) if e.is_missing() => Vec::new(),
            Err(e) => return Err(e.into_error("ignore file", &file)),
        };
        let mut patterns: Vec<String> = String::from_utf8_lossy(&bytes).lines().map(str::to_owned).collect();
        patterns.extend(extra.iter().map(|p| p.as_ref().to_owned()));
        Excludes::new(&patterns)
    }

    /// Whether any pattern re-includes paths; without one, an excluded directory can be skipped whole.
    pub fn has_negations(&self) -> bool {
        self.negated.iter().any(|n| *n)
    }

    /// Whether `relative` (a path inside the source, `/`-separated) is excluded.
    pub fn is_excluded(&self, relative: &Path) -> bool {
        let mut last_match: Option<usize> = None;
        let mut candidate = Some(relative);
        while let Some(path) = candidate {
            if path.as_os_str().is_empty() {
                break;
            }
            if let Some(&index) = self.set.matches(path).iter().max() {
                last_match = last_match.max(Some(index));
            }
            candidate = path.parent();
        }
        last_match.is_some_and(|index| !self.negated[index])
    }
}

/// The most of a pattern an error shows.
const SHOWN_PATTERN_CHARS: usize = 100;

/// `pattern` for an error: its first [`SHOWN_PATTERN_CHARS`] characters.
fn shown(pattern: &str) -> String {
    match pattern.char_indices().nth(SHOWN_PATTERN_CHARS) {
        Some((end, _)) => format!("{}…", &pattern[..end]),
        None => pattern.to_owned(),
    }
}

/// Go's `filepath.Clean` for a pattern, without a leading `/`.
fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(patterns: &[&str], path: &str) -> bool {
        Excludes::new(patterns).unwrap().is_excluded(Path::new(path))
    }

    #[test]
    fn plain_patterns_exclude_paths_and_everything_below() {
        assert!(excluded(&["*.log"], "a.log"));
        assert!(!excluded(&["*.log"], "dir/a.log"), "* does not cross /");
        assert!(excluded(&["**/*.log"], "dir/sub/a.log"));
        assert!(excluded(&["tmp"], "tmp/deep/file"));
        assert!(excluded(&["/tmp/"], "tmp/file"), "leading and trailing / are cleaned");
        assert!(!excluded(&["tmp"], "tmpfile"));
        assert!(excluded(&["a/./b/../c"], "a/c/x"));
    }

    #[test]
    fn negation_reincludes_and_last_match_wins() {
        let patterns = ["*.md", "!README.md"];
        assert!(excluded(&patterns, "NOTES.md"));
        assert!(!excluded(&patterns, "README.md"));
        let reversed = ["!README.md", "*.md"];
        assert!(excluded(&reversed, "README.md"));
        let inside = ["docs", "!docs/keep.txt"];
        assert!(excluded(&inside, "docs/drop.txt"));
        assert!(!excluded(&inside, "docs/keep.txt"));
        assert!(Excludes::new(&inside).unwrap().has_negations());
    }

    #[test]
    fn comments_and_blank_lines_are_ignored_and_bad_globs_are_errors() {
        assert!(!excluded(&["# *.txt", "", "   "], "a.txt"));
        assert!(Excludes::new(&["[unclosed"]).is_err());
    }
}
