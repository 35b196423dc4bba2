//! `yester completions SHELL`: print a shell completion script.

use anyhow::Result;
use clap::{Args, CommandFactory};

#[derive(Args)]
pub struct CompletionsArgs {
    shell: clap_complete::Shell,
}

/// The script for `C`, the top-level parser (passed in: it lives above the commands).
pub fn completions<C: CommandFactory>(a: CompletionsArgs) -> Result<u8> {
    clap_complete::generate(a.shell, &mut C::command(), "yester", &mut std::io::stdout());
    Ok(0)
}
