//! The global settings every command may use: the top-level flags merged with the
//! configuration file.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::config_file;
use super::size::parse_size_usize;

/// Global settings every command may use.
pub struct Ctx {
    /// Where the repository is, as given (a path or a URL); opened by [`super::repo`].
    pub repo: Option<String>,
    pub lock_wait: Duration,
    pub quiet: bool,
    pub config: Option<config_file::Loaded>,
}

impl Ctx {
    /// Merge the flags with the configuration file (`config`, else the default file if it
    /// exists); a flag wins over the file.
    pub fn new(
        repo: Option<String>,
        config: Option<&Path>,
        lock_wait: Option<Duration>,
        quiet: bool,
    ) -> Result<Ctx> {
        let loaded = config_file::load(config)?;
        let from_config = |f: &dyn Fn(&config_file::Config) -> Option<String>| {
            loaded.as_ref().and_then(|l| f(&l.config))
        };
        let lock_wait = match (lock_wait, from_config(&|c| c.lock_wait.clone())) {
            (Some(w), _) => w,
            (None, Some(w)) => humantime::parse_duration(&w)
                .with_context(|| format!("lock_wait {w:?} in the config"))?,
            (None, None) => Duration::ZERO,
        };
        Ok(Ctx {
            repo: repo.or_else(|| from_config(&|c| c.repository.clone())),
            lock_wait,
            quiet,
            config: loaded,
        })
    }

    /// The repository location, or an error saying the three ways to give one.
    pub fn location(&self) -> Result<&str> {
        self.repo.as_deref().context(
            "no repository given: use -r/--repo, set YESTER_REPO, or set `repository` in /etc/yester/yester.toml",
        )
    }

    /// The chunk cache size: the flag, else the config file's `cache_size`, else `default()`
    /// (worked out only then: the server's asks the kernel for the RAM size).
    pub fn cache_size(
        &self,
        flag: Option<usize>,
        default: impl FnOnce() -> usize,
    ) -> Result<usize> {
        if let Some(f) = flag {
            return Ok(f);
        }
        match self
            .config
            .as_ref()
            .and_then(|c| c.config.cache_size.clone())
        {
            Some(c) => {
                parse_size_usize(&c).map_err(|e| anyhow::anyhow!("cache_size in the config: {e}"))
            }
            None => Ok(default()),
        }
    }
}
