//! Helpers shared by the integration tests: running the `yester` binary (always with a
//! timeout), making repositories, and comparing directory trees (content with GNU `diff`,
//! metadata with a listing built here).
//!
//! Naming convention for special files: `diff -r` cannot compare FIFOs, sockets and device
//! nodes (it reports "File a is a fifo while file b is a fifo" and exits 1, and it would
//! *read* a device node such as /dev/zero forever). Tests therefore give such files names
//! ending in one of [`SPECIAL_SUFFIXES`] (`~fifo`, `~sock`, `~dev`), [`diff_trees`] excludes
//! them with `diff -x`, and they are compared through [`listing`] only. Other names used by
//! the tests never contain `~`, so nothing else is excluded by accident.
//!
//! The helpers live in files by concern and are all re-exported here, so `common::NAME` works
//! for every one of them: `run` (running the binary: [`Yester`], [`yester`], [`Output`]),
//! `repo` ([`Repo`]), `trees` (making and comparing trees), `probe` (what the machine allows),
//! `mounts`, `fuse` ([`FuseMount`]), `nfs` ([`NfsServer`], [`xdr`]) and `cli` (commands on a
//! repository at a path of the test's own).

#![allow(dead_code)]

pub mod cli;
mod fuse;
mod mounts;
mod nfs;
mod probe;
mod repo;
mod run;
mod trees;

// Each test binary uses a part of them.
#[allow(unused_imports)]
pub use fuse::*;
#[allow(unused_imports)]
pub use mounts::*;
#[allow(unused_imports)]
pub use nfs::*;
#[allow(unused_imports)]
pub use probe::*;
#[allow(unused_imports)]
pub use repo::*;
#[allow(unused_imports)]
pub use run::*;
#[allow(unused_imports)]
pub use trees::*;
