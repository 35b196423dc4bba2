//! `yester init`: create a repository.

use anyhow::Result;
use clap::Args;
use yester::engine::format::config::{ChunkerParams, RepoConfig};
use yester::engine::Repository;
use yester::points::{default_levels, set_levels, validate_levels, Level};

use crate::cli::context::Ctx;
use crate::cli::size::parse_size;
use crate::cli::{format, repo};

#[derive(Args)]
pub struct InitArgs {
    /// Where to create the repository (default: --repo / YESTER_REPO)
    #[arg(value_hint = clap::ValueHint::AnyPath)]
    path: Option<String>,
    /// Average chunk size (min is a quarter, max four times it), e.g. 1MiB, 512KiB
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    chunk_avg: u32,
    /// zstd compression level (1-19)
    #[arg(long, default_value_t = 3)]
    compression: i32,
    /// Target size of pack files, e.g. 16MiB (1KiB-1GiB; smaller packs suit object stores
    /// with small-object pricing, larger ones fewer files)
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pack_size: u32,
    /// Retention levels, lowest first, as NAME=KEEP,… [default: the config file's levels, else
    /// hourly=6,daily=7,weekly=4,monthly=6]
    #[arg(long, value_parser = parse_levels)]
    levels: Option<Levels>,
}

/// Parsed `--levels`.
#[derive(Clone)]
pub struct Levels(Vec<Level>);

/// `NAME=KEEP,…` is the command line's spelling of a list of levels (the configuration file
/// has its own); what makes the list valid is the points layer's `validate_levels`.
fn parse_levels(s: &str) -> Result<Levels, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, keep) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: write levels as NAME=KEEP, e.g. hourly=6"))?;
        let keep = keep
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: KEEP must be a number"))?;
        out.push(Level {
            name: name.trim().to_string(),
            keep,
        });
    }
    validate_levels(&out).map_err(|e| e.to_string())?;
    Ok(Levels(out))
}

pub fn init(ctx: &Ctx, a: InitArgs) -> Result<u8> {
    let location = match a.path {
        Some(p) => p,
        None => ctx.location()?.to_string(),
    };
    let mut config = RepoConfig::new(ChunkerParams::from_avg(a.chunk_avg)?, a.compression)?;
    if !(1024..=1 << 30).contains(&a.pack_size) {
        anyhow::bail!("--pack-size must be between 1KiB and 1GiB");
    }
    config.pack_size = a.pack_size;
    let levels = match a.levels {
        Some(l) => l.0,
        None => ctx
            .config
            .as_ref()
            .and_then(|c| c.levels())
            .unwrap_or_else(default_levels),
    };
    // Always written, the defaults too: the config says what the repository keeps.
    set_levels(&mut config, &levels)?;
    let repo = Repository::init(repo::backend(&location)?, config)?;
    if !ctx.quiet {
        let c = &repo.config().chunk_sizes;
        println!(
            "created repository {} at {} (chunks {}/{}/{}, zstd level {})",
            repo.config().id,
            location,
            format::bytes(c.min_size.into()),
            format::bytes(c.avg_size.into()),
            format::bytes(c.max_size.into()),
            repo.config().compression_level
        );
    }
    Ok(0)
}
