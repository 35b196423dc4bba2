//! `yester run LEVEL`: what cron or a timer calls; back up every configured source (lowest
//! level) or rotate (higher levels), one summary line per source.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Result};
use clap::Args;
use yester::engine::BackupOptions;
use yester::points::backup::backup_and_record;
use yester::points::{levels_of, RotateOutcome};

use super::backup::EXIT_PARTIAL;
use crate::cli::config_file::SourceSpec;
use crate::cli::context::Ctx;
use crate::cli::progress::BackupProgress;
use crate::cli::{format, hints, repo};

#[derive(Args)]
pub struct RunArgs {
    /// The level to run, e.g. hourly (back up) or daily (rotate)
    level: String,
}

/// How one source fared.
enum Outcome {
    Ok(String),
    Partial(String),
    Failed(String),
}

/// Run hooks in order through /bin/sh; the first failure stops and is returned.
fn hooks(kind: &str, cmds: &[String], source: &str) -> Result<(), String> {
    for cmd in cmds {
        let status = Command::new("/bin/sh")
            .arg("-c")
            .arg(cmd)
            .env("YESTER_SOURCE", source)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("{kind} hook `{cmd}` could not run: {e}"))?;
        if !status.success() {
            return Err(format!("{kind} hook `{cmd}` failed ({status})"));
        }
    }
    Ok(())
}

fn backup_source(ctx: &Ctx, repo: &yester::engine::Repository, s: &SourceSpec) -> Outcome {
    let name = s.name.get_ref().clone();
    if let Err(e) = hooks("pre", &s.pre, &name) {
        return Outcome::Failed(format!("{e}; not backed up"));
    }
    let excludes = match ctx.config.as_ref().map(|c| c.excludes(s)) {
        Some(Ok(x)) => x,
        Some(Err(e)) => return Outcome::Failed(format!("{e:#}")),
        None => Vec::new(),
    };
    let opts = BackupOptions {
        source: name.clone(),
        paths: s.paths.iter().map(|p| PathBuf::from(p.get_ref())).collect(),
        excludes,
        one_file_system: s.one_file_system,
        lock_wait: ctx.lock_wait,
        time: None,
        force: false,
        ignore_inode: s.ignore_inode,
        jobs: None,
    };
    let result = backup_and_record(repo, &opts, &mut BackupProgress::new(ctx.quiet))
        .map(|recorded| recorded.report)
        // Reported as `backup` reports it: a failure to record says the snapshot was saved.
        .map_err(super::backup::into_anyhow);
    let post = hooks("post", &s.post, &name);
    match (result, post) {
        (Err(e), _) => Outcome::Failed(hints::message(&e)),
        (Ok(_), Err(e)) => Outcome::Failed(e),
        (Ok(r), Ok(())) => {
            let st = &r.snapshot.stats;
            // Recording the backup read (and checked) these levels already.
            let levels = levels_of(repo).unwrap_or_default();
            let lowest = levels.first().map_or("", |l| l.name.as_str());
            let line = format!(
                "snapshot {} {lowest}.0: {} files ({} unchanged), read {}, added {}, {:.1}s",
                r.id.short(),
                st.files,
                st.files_unchanged,
                format::bytes(st.bytes_read),
                format::bytes(st.stored_bytes_added),
                st.duration_secs
            );
            if r.is_partial() {
                Outcome::Partial(format!(
                    "{line}; PARTIAL: {}",
                    r.snapshot.warnings.join("; ")
                ))
            } else {
                Outcome::Ok(line)
            }
        }
    }
}

pub fn run(ctx: &Ctx, a: RunArgs) -> Result<u8> {
    let Some(conf) = &ctx.config else {
        bail!("`yester run` needs a configuration file with sources (see docs/OPERATIONS.md)");
    };
    let problems = conf.check(false);
    if !problems.is_empty() {
        bail!(
            "the configuration has problems (see `yester config check`):\n{}",
            problems.join("\n")
        );
    }
    let repo = repo::open(ctx)?;
    let levels = &levels_of(&repo)?;
    let Some(pos) = levels.iter().position(|l| l.name == a.level) else {
        let names: Vec<&str> = levels.iter().map(|l| l.name.as_str()).collect();
        bail!(
            "no level {:?} in the repository (levels: {})",
            a.level,
            names.join(", ")
        );
    };
    if conf.config.sources.is_empty() {
        bail!("{}: no [[source]] is configured", conf.path.display());
    }
    let mut code = 0u8;
    for s in &conf.config.sources {
        let name = s.name.get_ref();
        let outcome = if pos == 0 {
            backup_source(ctx, &repo, s)
        } else {
            match yester::points::rotate(&repo, name, &a.level, ctx.lock_wait) {
                Ok(RotateOutcome::Promoted {
                    from,
                    to,
                    snapshot,
                    dropped,
                }) => Outcome::Ok(format!(
                    "{from} ({}) became {to}{}",
                    snapshot.short(),
                    if dropped.is_empty() {
                        String::new()
                    } else {
                        format!(", {} dropped", dropped.len())
                    }
                )),
                Ok(RotateOutcome::NotFull { lower, have, keep }) => Outcome::Ok(format!(
                    "nothing to rotate: {lower} has {have} of {keep} points"
                )),
                Err(e) => Outcome::Failed(hints::message(&e.into())),
            }
        };
        match outcome {
            Outcome::Ok(l) => println!("{name}: ok: {l}"),
            Outcome::Partial(l) => {
                println!("{name}: partial: {l}");
                if code != 1 {
                    code = EXIT_PARTIAL;
                }
            }
            Outcome::Failed(l) => {
                println!("{name}: FAILED: {l}");
                code = 1;
            }
        }
    }
    Ok(code)
}
