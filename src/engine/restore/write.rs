//! Writing what the walk planned: a file's content (chunk by chunk, zero runs as holes,
//! cut where damage stops it) and every entry's metadata (owner, xattrs, mode, times).

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use crate::engine::error::{Error, Result};
use crate::engine::format::id::BlobId;
use crate::engine::format::tree::{Entry, NodeKind};
use crate::engine::store::repo::BlobReader;

use super::loc::Loc;
use super::walk::{Pending, Piece};

/// Zero runs of at least this many bytes become holes.
pub(super) const HOLE_BLOCK: usize = 4096;
pub(super) fn timespec(t: crate::engine::format::tree::Timestamp) -> TimeSpec {
    TimeSpec::new(t.secs, i64::from(t.nanos))
}

/// Where a file's content could not be restored, and why.
#[derive(Clone)]
pub(super) struct Damage {
    pub(super) at: u64,
    pub(super) msg: String,
}

/// What a task of a batch did: a piece of a file created before (bytes written, damage met),
/// or a whole file it created (bytes written, problems: damage, metadata).
pub(super) enum Written {
    Piece(u64, Option<Damage>),
    Whole(u64, Vec<String>),
}

/// Create a file of one piece, write it, cut it where damage stopped it, set its metadata.
pub(super) fn write_whole(
    reader: &BlobReader,
    f: &Pending,
    piece: &Piece,
    is_root: bool,
) -> Result<Written> {
    let (dest, e) = (&f.loc, &f.entry);
    let file = dest.open_file(OFlag::O_CREAT | OFlag::O_EXCL)?;
    let (bytes, damage) = write_piece(reader, e, dest, piece, Some(&file))?;
    let mut errors = Vec::new();
    if let Some(d) = damage {
        // As in `flush`: a damaged file ends where its verified bytes end.
        file.set_len(d.at)
            .map_err(|err| Error::io(dest.path.display(), err))?;
        errors.push(d.msg);
    }
    errors.extend(set_metadata(e, Meta::Fd(&file, &dest.path), is_root));
    Ok(Written::Whole(bytes, errors))
}

/// Write one piece of a file's content into the file (`open`, else opened here), leaving
/// holes for zero blocks; returns the bytes written and the damage met (the piece stops there).
pub(super) fn write_piece(
    reader: &BlobReader,
    e: &Entry,
    dest: &Loc,
    piece: &Piece,
    open: Option<&File>,
) -> Result<(u64, Option<Damage>)> {
    let opened;
    let f = match open {
        Some(f) => f,
        None => {
            opened = dest.open_file(OFlag::empty())?;
            &opened
        }
    };
    let mut written = 0;
    let mut pos = piece.offset;
    // Runs of one chunk (zeros in disk images) are read and verified once.
    let mut last: Option<(BlobId, Vec<u8>)> = None;
    for c in &e.chunks[piece.first..piece.end] {
        if last.as_ref().is_none_or(|(id, _)| *id != c.id) {
            match reader.read_chunk(c) {
                Ok(d) => last = Some((c.id, d)),
                Err(err) => {
                    let msg = format!("{}: cannot restore content: {err}", dest.path.display());
                    return Ok((written, Some(Damage { at: pos, msg })));
                }
            }
        }
        let data = last.as_ref().map_or(&[][..], |(_, d)| d.as_slice());
        // Skip whole zero blocks so sparse files stay sparse.
        for block in data.chunks(HOLE_BLOCK) {
            if block.len() < HOLE_BLOCK || block.iter().any(|&b| b != 0) {
                f.write_all_at(block, pos)
                    .map_err(|err| Error::io(dest.path.display(), err))?;
            }
            pos += block.len() as u64;
        }
        written += data.len() as u64;
    }
    // The last piece sets the size: zero blocks at the end were skipped as holes.
    if piece.end == e.chunks.len() {
        f.set_len(e.size)
            .map_err(|err| Error::io(dest.path.display(), err))?;
    }
    Ok((written, None))
}

/// Where metadata goes: a name in a directory, or a file restore has open (and its path).
pub(super) enum Meta<'a> {
    At(&'a Loc),
    Fd(&'a File, &'a Path),
}

/// Owner, extended attributes, mode and times of a restored entry; returns the problems.
pub(super) fn set_metadata(e: &Entry, to: Meta, is_root: bool) -> Vec<String> {
    let mut errors = Vec::new();
    let path = match &to {
        Meta::At(l) => l.path.as_path(),
        Meta::Fd(_, p) => p,
    };
    let mut fail = |msg: std::fmt::Arguments| errors.push(format!("{}: {msg}", path.display()));
    if is_root {
        let (uid, gid) = (Some(Uid::from_raw(e.uid)), Some(Gid::from_raw(e.gid)));
        let r = match &to {
            Meta::At(l) => nix::unistd::fchownat(
                l.dir.as_ref(),
                l.name.as_slice(),
                uid,
                gid,
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ),
            Meta::Fd(f, _) => nix::unistd::fchown(f, uid, gid),
        };
        if let Err(err) = r {
            fail(format_args!("cannot set owner: {err}"));
        }
    }
    // Extended attributes after chown, which drops security.capability, and before chmod,
    // which may take away the write permission a non-root user needs to set them.
    for (k, v) in &e.xattrs {
        let r = match &to {
            Meta::At(l) => xattr::set(l.proc_path(), OsStr::from_bytes(k), v),
            Meta::Fd(f, _) => xattr::FileExt::set_xattr(*f, OsStr::from_bytes(k), v),
        };
        if let Err(err) = r {
            fail(format_args!(
                "cannot set extended attribute {}: {err}",
                String::from_utf8_lossy(k)
            ));
        }
    }
    // After chown, which clears set-id bits; symlinks have no mode of their own.
    if e.kind != NodeKind::Symlink {
        let mode = Mode::from_bits_truncate(e.mode & 0o7777);
        let r = match &to {
            Meta::At(l) => nix::sys::stat::fchmodat(
                l.dir.as_ref(),
                l.name.as_slice(),
                mode,
                FchmodatFlags::FollowSymlink,
            ),
            Meta::Fd(f, _) => nix::sys::stat::fchmod(f, mode),
        };
        if let Err(err) = r {
            fail(format_args!("cannot set mode: {err}"));
        }
    }
    // atime is not recorded (reading files would change every tree); it is set to mtime.
    let t = timespec(e.mtime);
    let r = match &to {
        Meta::At(l) => nix::sys::stat::utimensat(
            l.dir.as_ref(),
            l.name.as_slice(),
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        ),
        Meta::Fd(f, _) => nix::sys::stat::futimens(f, &t, &t),
    };
    if let Err(err) = r {
        fail(format_args!("cannot set times: {err}"));
    }
    errors
}
