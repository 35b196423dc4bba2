//! The configuration file (TOML): repository, levels, sources with excludes and hooks, NFS.
//! Default `/etc/yester/yester.toml`, or `--config` / `YESTER_CONFIG`. See docs/OPERATIONS.md.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use toml::Spanned;
use yester::points::{validate_levels, Level};

/// Where the configuration is read from when nothing else is said.
pub const DEFAULT_CONFIG: &str = "/etc/yester/yester.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelSpec {
    pub name: String,
    pub keep: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub name: Spanned<String>,
    pub paths: Vec<Spanned<String>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    pub exclude_file: Option<Spanned<String>>,
    #[serde(default)]
    pub one_file_system: bool,
    /// As `backup --ignore-inode`.
    #[serde(default)]
    pub ignore_inode: bool,
    /// Commands run (through /bin/sh -c) before the backup; a failure skips the backup.
    #[serde(default)]
    pub pre: Vec<String>,
    /// Commands run after the backup.
    #[serde(default)]
    pub post: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfsSpec {
    pub listen: Option<String>,
    pub exports: Option<PathBuf>,
    pub handle_key: Option<PathBuf>,
}

/// The parsed file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A location as `-r` takes it (a path or a URL).
    pub repository: Option<String>,
    pub levels: Option<Spanned<Vec<LevelSpec>>>,
    pub cache_size: Option<String>,
    pub lock_wait: Option<String>,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceSpec>,
    #[serde(default)]
    pub nfs: NfsSpec,
}

/// A loaded configuration with its file name and text, for messages with line numbers.
pub struct Loaded {
    pub path: PathBuf,
    text: String,
    pub config: Config,
}

impl Loaded {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn at<T>(&self, s: &Spanned<T>) -> String {
        format!("{}:{}", self.path.display(), self.line(s.span().start))
    }

    /// The levels, if the file sets them.
    pub fn levels(&self) -> Option<Vec<Level>> {
        self.config.levels.as_ref().map(|l| {
            l.get_ref()
                .iter()
                .map(|s| Level {
                    name: s.name.clone(),
                    keep: s.keep,
                })
                .collect()
        })
    }

    /// Exclude patterns of a source: its globs plus the lines of its exclude file.
    pub fn excludes(&self, s: &SourceSpec) -> Result<Vec<String>> {
        let mut out: Vec<String> = s.exclude.iter().map(|e| e.get_ref().clone()).collect();
        if let Some(f) = &s.exclude_file {
            let text = std::fs::read_to_string(f.get_ref())
                .with_context(|| format!("{}: exclude_file {}", self.at(f), f.get_ref()))?;
            out.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
        }
        Ok(out)
    }

    /// Check everything that can be checked without running a backup; every problem is
    /// reported with its line. `paths_must_exist` is false when pre hooks are about to run
    /// (they may create what is backed up).
    pub fn check(&self, paths_must_exist: bool) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(levels) = &self.config.levels {
            if let Err(e) = validate_levels(&self.levels().unwrap_or_default()) {
                problems.push(format!("{}: levels: {e}", self.at(levels)));
            }
        }
        if let Some(c) = &self.config.cache_size {
            if super::size::parse_size_u64(c).is_err() {
                problems.push(format!(
                    "{}: cache_size {c:?} is not a size like 256MiB",
                    self.path.display()
                ));
            }
        }
        if let Some(w) = &self.config.lock_wait {
            if humantime::parse_duration(w).is_err() {
                problems.push(format!(
                    "{}: lock_wait {w:?} is not a duration like 10m",
                    self.path.display()
                ));
            }
        }
        let mut names: Vec<&str> = Vec::new();
        for s in &self.config.sources {
            let name = s.name.get_ref();
            if let Err(e) = yester::engine::format::snapshot::check_source_name(name) {
                problems.push(format!("{}: {e}", self.at(&s.name)));
            }
            if names.contains(&name.as_str()) {
                problems.push(format!(
                    "{}: source {name} is defined twice",
                    self.at(&s.name)
                ));
            }
            names.push(name);
            if s.paths.is_empty() {
                problems.push(format!("{}: source {name} has no paths", self.at(&s.name)));
            }
            for p in &s.paths {
                let path = Path::new(p.get_ref());
                if !path.is_absolute() {
                    problems.push(format!(
                        "{}: source {name}: path {} is not absolute",
                        self.at(p),
                        path.display()
                    ));
                } else if paths_must_exist && std::fs::symlink_metadata(path).is_err() {
                    problems.push(format!(
                        "{}: source {name}: path {} does not exist",
                        self.at(p),
                        path.display()
                    ));
                }
            }
            for e in &s.exclude {
                if let Err(err) = globset::Glob::new(e.get_ref()) {
                    problems.push(format!(
                        "{}: source {name}: exclude {:?}: {err}",
                        self.at(e),
                        e.get_ref()
                    ));
                }
            }
            if let Some(f) = &s.exclude_file {
                if !Path::new(f.get_ref()).is_file() {
                    problems.push(format!(
                        "{}: source {name}: exclude_file {} does not exist",
                        self.at(f),
                        f.get_ref()
                    ));
                }
            }
        }
        if let Some(e) = &self.config.nfs.exports {
            match std::fs::read_to_string(e) {
                Ok(text) => {
                    if let Err(err) = yester::nfs::Exports::parse(&text) {
                        problems.push(format!(
                            "{}: nfs.exports: {}: {err}",
                            self.path.display(),
                            e.display()
                        ));
                    }
                }
                Err(err) => problems.push(format!(
                    "{}: nfs.exports {}: {err}",
                    self.path.display(),
                    e.display()
                )),
            }
        }
        problems
    }
}

/// Load the configuration: `explicit` (from --config or YESTER_CONFIG) must exist; the default
/// file is used only if it exists.
pub fn load(explicit: Option<&Path>) -> Result<Option<Loaded>> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = PathBuf::from(DEFAULT_CONFIG);
            if !p.exists() {
                return Ok(None);
            }
            p
        }
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: Config = match toml::from_str(&text) {
        Ok(c) => c,
        Err(e) => {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
                .unwrap_or(0);
            bail!("{}:{line}: {}", path.display(), e.message());
        }
    };
    Ok(Some(Loaded { path, text, config }))
}
