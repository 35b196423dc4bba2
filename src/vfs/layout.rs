//! The names of the view and the one parser of paths in it (docs/LAYOUT.md):
//!
//! ```text
//! /                                 point names, latest/, snapshots/
//! <level>.<n>/<source>/…            a backup point, e.g. daily.0/web1/etc/hosts
//! latest/<source>/…                 the newest snapshot of a source
//! snapshots/<source>/<date>/…       every snapshot by its dated name (YYYY-MM-DD-HHMMSS, UTC)
//! <id prefix>/…                     a snapshot by id (not listed in the tree)
//! ```
//!
//! FUSE `--path`, NFS MNT and the command line all take their paths apart here, so a path that
//! works in one works in the others.

use crate::engine::format::snapshot::SnapshotEntry;
use crate::engine::{Error, Result};
use crate::points::{Level, PointName, Selector, View};

pub use crate::points::name::{LATEST, SNAPSHOTS};

/// Where a path of the view leads, before anything is looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `/`
    Root,
    /// `/daily.0`
    Level(PointName),
    /// `/latest`
    Latest,
    /// `/snapshots`
    Snapshots,
    /// `/snapshots/web1`
    SourceDates(String),
    /// A path `inner` (relative, `/`-separated, may be empty) inside the snapshot `sel` names.
    In { sel: Selector, inner: Vec<u8> },
}

/// The non-empty components of a path; `.` is skipped.
fn components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

/// Take a path of the view apart. Level names are checked against `levels`; a first component
/// that is neither a point, `latest` nor `snapshots` is a snapshot id prefix.
pub fn parse(path: &[u8], levels: &[Level]) -> Result<Place> {
    let comps = components(path);
    let text = |c: &[u8]| String::from_utf8_lossy(c).into_owned();
    let rest = |n: usize| comps.get(n..).unwrap_or_default().join(&b'/');
    let Some(first) = comps.first().map(|c| text(c)) else {
        return Ok(Place::Root);
    };
    if comps.iter().any(|c| *c == b"..") {
        return Err(Error::NotFound(format!(
            "{}: '..' is not allowed in a snapshot path",
            String::from_utf8_lossy(path)
        )));
    }
    let source = comps.get(1).map(|c| text(c));
    if first == SNAPSHOTS {
        let Some(source) = source else {
            return Ok(Place::Snapshots);
        };
        let Some(name) = comps.get(2).map(|c| text(c)) else {
            return Ok(Place::SourceDates(source));
        };
        return Ok(Place::In {
            sel: Selector::Dated { source, name },
            inner: rest(3),
        });
    }
    if first == LATEST {
        return Ok(match source {
            None => Place::Latest,
            Some(source) => Place::In {
                sel: Selector::Latest { source },
                inner: rest(2),
            },
        });
    }
    if let Some(point) =
        PointName::parse(&first).filter(|p| levels.iter().any(|l| l.name == p.level))
    {
        return Ok(match source {
            None => Place::Level(point),
            Some(source) => Place::In {
                sel: Selector::Point { point, source },
                inner: rest(2),
            },
        });
    }
    Ok(Place::In {
        sel: Selector::Id(first),
        inner: rest(1),
    })
}

/// A command-line snapshot name, `NAME[:PATH]` or `NAME/PATH` (NAME in any of the layout's
/// forms), taken apart into the snapshot it selects and a path inside it.
pub fn parse_spec(spec: &[u8], levels: &[Level]) -> Result<(Selector, Vec<u8>)> {
    let (head, path) = match spec.iter().position(|&c| c == b':') {
        Some(i) => (&spec[..i], Some(&spec[i + 1..])),
        None => (spec, None),
    };
    let shown = String::from_utf8_lossy(head);
    let incomplete =
        |shape: &str| Error::NotFound(format!("{shown}: incomplete name: use {shape}"));
    let (sel, inner) = match parse(head, levels)? {
        Place::In { sel, inner } => (sel, inner),
        Place::Root => return Err(Error::NotFound(
            "no snapshot named: give an id, a point like daily.0/SOURCE, latest/SOURCE or snapshots/SOURCE/DATE".into(),
        )),
        Place::Level(p) => return Err(incomplete(&format!("{p}/SOURCE[/PATH]"))),
        Place::Latest => return Err(incomplete("latest/SOURCE[/PATH]")),
        Place::Snapshots | Place::SourceDates(_) => {
            return Err(incomplete("snapshots/SOURCE/YYYY-MM-DD-HHMMSS[/PATH]"))
        }
    };
    match path {
        Some(_) if !inner.is_empty() => Err(Error::NotFound(format!(
            "{shown}: give the path either after ':' or after the snapshot name, not both"
        ))),
        Some(p) => Ok((sel, p.to_vec())),
        None => Ok((sel, inner)),
    }
}

/// Resolve a command-line snapshot name (see [`parse_spec`]) to a snapshot and a path in it.
pub fn resolve<'v>(view: &'v View, spec: &[u8]) -> Result<(&'v SnapshotEntry, Vec<u8>)> {
    let (sel, path) = parse_spec(spec, &view.levels)?;
    Ok((view.select(&sel)?, path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::default_levels;

    fn place(s: &str) -> Place {
        parse(s.as_bytes(), &default_levels()).unwrap()
    }

    #[test]
    fn paths_of_the_view() {
        assert_eq!(place("/"), Place::Root);
        assert_eq!(place("//./"), Place::Root);
        assert_eq!(
            place("daily.0"),
            Place::Level(PointName::parse("daily.0").unwrap())
        );
        assert_eq!(place("/latest/"), Place::Latest);
        assert_eq!(place("snapshots"), Place::Snapshots);
        assert_eq!(place("snapshots/web1"), Place::SourceDates("web1".into()));
        assert_eq!(
            place("/daily.0/web1/etc//nginx/"),
            Place::In {
                sel: Selector::Point {
                    point: PointName::parse("daily.0").unwrap(),
                    source: "web1".into()
                },
                inner: b"etc/nginx".to_vec()
            }
        );
        assert_eq!(
            place("snapshots/web1/2026-11-21-120000/a"),
            Place::In {
                sel: Selector::Dated {
                    source: "web1".into(),
                    name: "2026-11-21-120000".into()
                },
                inner: b"a".to_vec()
            }
        );
        // A level the config does not have is an id prefix, as before.
        assert_eq!(
            place("yearly.0/web1"),
            Place::In {
                sel: Selector::Id("yearly.0".into()),
                inner: b"web1".to_vec()
            }
        );
        assert!(parse(b"daily.0/web1/../db1", &default_levels()).is_err());
    }

    #[test]
    fn command_line_names() {
        let l = default_levels();
        let (sel, p) = parse_spec(b"1a2b3c4d:etc/hosts", &l).unwrap();
        assert_eq!(
            (sel, p),
            (Selector::Id("1a2b3c4d".into()), b"etc/hosts".to_vec())
        );
        let (_, p) = parse_spec(b"latest/web1/a\xff/b", &l).unwrap();
        assert_eq!(p, b"a\xff/b".to_vec(), "non-UTF-8 bytes are kept");
        assert!(parse_spec(b"daily.0/web1/etc:hosts", &l).is_err());
        assert!(parse_spec(b"daily.0", &l).is_err());
        assert!(parse_spec(b"snapshots/web1", &l).is_err());
        assert!(parse_spec(b"", &l).is_err());
    }
}
