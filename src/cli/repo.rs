//! Opening the repository: the one place a location string (`-r`, `YESTER_REPO`, `repository`
//! in the config) becomes storage, and the view of its snapshots and points.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Result};
use yester::engine::backend::{Backend, LocalDir};
use yester::engine::snapshot::SnapshotEntry;
use yester::engine::Repository;
use yester::points::View;

use super::context::Ctx;

/// The storage at `location`: a local directory, given as a path or a `file:///path` URL.
///
/// When the engine's `yester::engine::backend::open_url` lands, this body becomes
/// `Ok(yester::engine::backend::open_url(location)?)` and every command follows.
pub fn backend(location: &str) -> Result<Arc<dyn Backend>> {
    Ok(Arc::new(LocalDir::new(local_path(location)?)))
}

/// The directory a location names; other URL schemes are refused by name.
fn local_path(location: &str) -> Result<&Path> {
    match scheme(location) {
        None => Ok(Path::new(location)),
        Some(("file", rest)) => {
            // Only `file:///abs/path`: a host part (`file://host/…`) is not this machine.
            if !rest.starts_with('/') {
                bail!("{location}: a file URL needs an absolute path, like file:///srv/backup");
            }
            Ok(Path::new(rest))
        }
        Some((scheme, _)) => bail!(
            "{location}: {scheme}:// repositories are not supported yet (use a local path or file:///path)"
        ),
    }
}

/// `scheme://rest` split at `://`, when what comes before is a URL scheme (RFC 3986: a letter,
/// then letters, digits, `+`, `-`, `.`); a path such as `./a://b` is not a URL.
fn scheme(location: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = location.split_once("://")?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then_some((scheme, rest))
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
    Ok(view.resolve(spec.as_bytes())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_file_urls_are_local() {
        assert_eq!(local_path("/srv/backup").unwrap(), Path::new("/srv/backup"));
        assert_eq!(local_path("backup").unwrap(), Path::new("backup"));
        assert_eq!(local_path("./a://b").unwrap(), Path::new("./a://b"));
        assert_eq!(
            local_path("file:///srv/backup").unwrap(),
            Path::new("/srv/backup")
        );
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        let e = local_path("ssh://host/srv/backup").unwrap_err().to_string();
        assert!(
            e.contains("ssh:// repositories are not supported yet"),
            "{e}"
        );
        let e = local_path("s3://bucket/prefix").unwrap_err().to_string();
        assert!(
            e.contains("s3:// repositories are not supported yet"),
            "{e}"
        );
        assert!(local_path("file://host/srv").is_err());
    }
}
