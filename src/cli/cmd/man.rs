//! `yester man`: man pages from the command definitions.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory};

#[derive(Args)]
pub struct ManArgs {
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// yester.1 for `C` (the top-level parser) to stdout, or every page into `--dir`.
pub fn man<C: CommandFactory>(a: ManArgs) -> Result<u8> {
    let cmd = C::command();
    match a.dir {
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            clap_mangen::generate_to(cmd, &d)
                .with_context(|| format!("writing man pages to {}", d.display()))?;
        }
    }
    Ok(0)
}
