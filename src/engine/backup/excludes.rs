//! Exclude patterns: a pattern with a `/` matches the absolute path, any other the name.

use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::engine::error::{Error, Result};

pub(super) struct Excludes {
    pub(super) by_path: GlobSet,
    pub(super) by_name: GlobSet,
}

impl Excludes {
    pub(super) fn new(patterns: &[String]) -> Result<Self> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in patterns {
            let g = Glob::new(p).map_err(|e| Error::Invalid(format!("exclude {p:?}: {e}")))?;
            if p.contains('/') {
                by_path.add(g);
            } else {
                by_name.add(g);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::Invalid(e.to_string()));
        Ok(Excludes {
            by_path: build(by_path)?,
            by_name: build(by_name)?,
        })
    }

    pub(super) fn excluded(&self, path: &Path) -> bool {
        self.by_path.is_match(path)
            || path
                .file_name()
                .is_some_and(|n| self.by_name.is_match(Path::new(n)))
    }
}
