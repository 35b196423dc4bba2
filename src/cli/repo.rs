//! Opening the repository: the one place a location string (`-r`, `YESTER_REPO`, `repository`
//! in the config) becomes storage, and the view of its snapshots and points.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use anyhow::Result;
use yester::engine::format::snapshot::SnapshotEntry;
use yester::engine::Backend;
use yester::engine::Repository;
use yester::points::View;

use super::context::Ctx;

/// The storage at `location`: a local directory, given as a path or a `file:///path` URL
/// (the engine's one factory; SSH and S3 locations are refused there by name).
pub fn backend(location: &str) -> Result<Arc<dyn Backend>> {
    Ok(yester::engine::open_url(location)?)
}

/// Open the repository the context names.
pub fn open(ctx: &Ctx) -> Result<Repository> {
    Ok(Repository::open(backend(ctx.location()?)?)?)
}

/// The repository and its snapshots, points and dated names.
pub fn open_view(ctx: &Ctx) -> Result<(Repository, View)> {
    let repo = open(ctx)?;
    let (view, broken) = View::load(&repo)?;
    for e in &broken {
        tracing::warn!("{e}");
    }
    Ok((repo, view))
}

/// Resolve a SNAPSHOT[:PATH] argument (any naming form) to a snapshot and a path in it.
pub fn resolve<'a>(view: &'a View, spec: &OsStr) -> Result<(&'a SnapshotEntry, Vec<u8>)> {
    Ok(yester::vfs::layout::resolve(view, spec.as_bytes())?)
}
