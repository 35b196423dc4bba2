//! One file per command: its clap arguments beside the function that runs it. Each function
//! returns the process exit status.

pub mod backup;
pub mod cat;
pub mod check;
pub mod completions;
pub mod config;
pub mod demo;
pub mod diff;
pub mod forget;
pub mod init;
pub mod ls;
pub mod man;
pub mod mount;
pub mod nfs;
pub mod points;
pub mod prune;
pub mod restore;
pub mod rotate;
pub mod run;
pub mod snapshots;
pub mod status;
pub mod unlock;
