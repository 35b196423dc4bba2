//! `yester config check`: validate the configuration file.

use anyhow::{bail, Result};
use clap::Subcommand;

use crate::cli::config_file;
use crate::cli::context::Ctx;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration file; every problem is reported with its line
    Check,
}

pub fn config(ctx: &Ctx, c: ConfigCommand) -> Result<u8> {
    match c {
        ConfigCommand::Check => config_check(ctx),
    }
}

fn config_check(ctx: &Ctx) -> Result<u8> {
    let Some(conf) = &ctx.config else {
        bail!(
            "no configuration file: give --config FILE or create {}",
            config_file::DEFAULT_CONFIG
        );
    };
    let problems = conf.check(true);
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        if !ctx.quiet {
            println!(
                "{}: ok ({} sources)",
                conf.path.display(),
                conf.config.sources.len()
            );
        }
        Ok(0)
    } else {
        Ok(1)
    }
}
