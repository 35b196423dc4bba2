//! One place that turns a repository location into a backend, so that adding SSH or S3 later
//! changes this file and not every command.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Backend, LocalDir};
use crate::engine::error::{Error, Result};

/// Where a repository location points.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Local(PathBuf),
    /// A recognised remote scheme that no backend implements yet.
    Unsupported(&'static str),
}

fn parse(url: &str) -> Result<Location> {
    if url.is_empty() {
        return Err(Error::Invalid("empty repository location".into()));
    }
    if let Some(rest) = url.strip_prefix("file://") {
        // file:///path, or file://localhost/path (RFC 8089); no other host is local.
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        if !path.starts_with('/') {
            return Err(Error::Invalid(format!(
                "{url}: a file URL must name an absolute path on this host (file:///path)"
            )));
        }
        return Ok(Location::Local(PathBuf::from(path)));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        let known = match scheme.to_ascii_lowercase().as_str() {
            "ssh" | "sftp" => "SSH",
            "s3" => "S3",
            _ => {
                return Err(Error::Invalid(format!(
                    "{url}: unknown repository location scheme {scheme:?} (a path or file:///path)"
                )))
            }
        };
        return Ok(Location::Unsupported(known));
    }
    // scp-like `[user@]host:path`: a colon before any slash, and either a user or an absolute
    // path after it. (A local relative path with a colon, like `backup:2026`, stays local;
    // `./backup:2026` always does.)
    if let Some((host, path)) = url.split_once(':') {
        if !host.is_empty() && !host.contains('/') && (host.contains('@') || path.starts_with('/'))
        {
            return Ok(Location::Unsupported("SSH"));
        }
    }
    Ok(Location::Local(PathBuf::from(url)))
}

/// The backend of a repository's location (for `init` as for `open`): a path (absolute or
/// relative) or `file:///path` opens a [`LocalDir`]; `ssh://…`, `user@host:/path` and `s3://…`
/// are recognised and refused with [`Error::Invalid`] (no such backend yet).
pub fn open_url(url: &str) -> Result<Arc<dyn Backend>> {
    match parse(url)? {
        Location::Local(p) => Ok(Arc::new(LocalDir::new(p))),
        Location::Unsupported(what) => Err(Error::Invalid(format!(
            "{url}: {what} repositories are not supported yet (only local directories: a path \
             or file:///path)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let local = |p: &str| Some(Location::Local(PathBuf::from(p)));
        let parse = |u: &str| parse(u).ok();
        assert_eq!(parse("/srv/backup"), local("/srv/backup"));
        assert_eq!(parse("backup"), local("backup"));
        assert_eq!(parse("./a:b"), local("./a:b"));
        assert_eq!(parse("backup:2026"), local("backup:2026"));
        assert_eq!(parse("file:///srv/backup"), local("/srv/backup"));
        assert_eq!(parse("file://localhost/srv/b"), local("/srv/b"));
        assert!(parse("file://elsewhere/srv/b").is_none());
        assert!(parse("").is_none());
        assert!(parse("ftp://h/x").is_none());
        for remote in [
            "ssh://u@h/srv",
            "u@h:/srv/b",
            "h:/srv/b",
            "u@h:b",
            "s3://bucket/p",
        ] {
            assert!(
                matches!(parse(remote), Some(Location::Unsupported(_))),
                "{remote}"
            );
        }
    }

    #[test]
    fn remote_locations_are_refused_with_a_clear_error() {
        for remote in ["ssh://u@h/srv", "u@h:/srv/b", "s3://bucket/p"] {
            let Err(e) = open_url(remote) else {
                panic!("{remote} opened");
            };
            assert!(matches!(e, Error::Invalid(_)), "{e:?}");
            assert!(e.to_string().contains("not supported yet"), "{e}");
        }
        let d = tempfile::tempdir().unwrap();
        let url = format!("file://{}", d.path().display());
        assert_eq!(
            open_url(&url).unwrap().location(),
            d.path().display().to_string()
        );
    }
}
