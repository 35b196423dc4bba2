//! The restore walk: the [`Restorer`] creates directories, links and special files as it
//! reads the snapshot's trees, and collects regular files into batches whose content is then
//! written in parallel, cut into pieces for big files.

use std::collections::HashMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::UnlinkatFlags;
use rayon::prelude::*;

use crate::engine::error::{Error, Result};
use crate::engine::format::id::BlobId;
use crate::engine::format::tree::{Entry, HardlinkKey, NodeKind};
use crate::engine::store::repo::BlobReader;

use super::loc::Loc;
use super::write::{set_metadata, write_piece, write_whole, Damage, Meta, Written};
use super::{RestoreProgress, RestoreReport};

/// Files whose content is written in parallel at a time; a batch also ends at this many bytes
/// of content or this many finished directories (whose metadata waits for their files).
pub(super) const BATCH_FILES: usize = 1024;
pub(super) const BATCH_BYTES: u64 = 512 << 20;
pub(super) const BATCH_DIRS: usize = 4096;
/// Big files are written as pieces of about this size, in parallel.
pub(super) const PIECE_BYTES: u64 = 16 << 20;

pub(super) struct Restorer<'a> {
    pub(super) reader: &'a BlobReader,
    pub(super) overwrite: bool,
    pub(super) is_root: bool,
    pub(super) links: HashMap<HardlinkKey, Loc>,
    pub(super) report: RestoreReport,
    /// Files whose content and metadata are still to be written.
    pub(super) pending: Vec<Pending>,
    pub(super) pending_bytes: u64,
    /// Directories whose entries all exist; their metadata follows their files' content.
    pub(super) pending_dirs: Vec<(Loc, Entry)>,
    pub(super) progress: &'a dyn RestoreProgress,
}

/// A file of the next batch. Most files are created by the thread that writes them, in one
/// go; a big file (written in pieces by several threads) or a hard-linked one (whose other
/// names are linked to it during the walk) is `created` by the walk already.
pub(super) struct Pending {
    pub(super) loc: Loc,
    pub(super) entry: Entry,
    pub(super) created: bool,
}

/// Part of a file to write: chunks `first..end` of `batch[file]`, starting at byte `offset`.
pub(super) struct Piece {
    pub(super) file: usize,
    pub(super) first: usize,
    pub(super) end: usize,
    pub(super) offset: u64,
}

/// Cut each file of a batch into pieces of about [`PIECE_BYTES`].
pub(super) fn pieces(batch: &[Pending]) -> Vec<Piece> {
    let mut out = Vec::new();
    for (file, Pending { entry: e, .. }) in batch.iter().enumerate() {
        let (mut first, mut offset, mut len) = (0, 0, 0);
        for (i, c) in e.chunks.iter().enumerate() {
            len += u64::from(c.len);
            if len >= PIECE_BYTES {
                out.push(Piece {
                    file,
                    first,
                    end: i + 1,
                    offset,
                });
                (first, offset, len) = (i + 1, offset + len, 0);
            }
        }
        if first < e.chunks.len() {
            out.push(Piece {
                file,
                first,
                end: e.chunks.len(),
                offset,
            });
        }
    }
    out
}

impl Restorer<'_> {
    /// Make room for `dest`; Ok(false) means an existing directory is reused.
    pub(super) fn prepare(&mut self, dest: &Loc, kind: NodeKind) -> Result<bool> {
        let Ok(st) = nix::sys::stat::fstatat(
            dest.dir.as_ref(),
            dest.name.as_slice(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) else {
            return Ok(true);
        };
        let is_dir = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR;
        if is_dir && kind == NodeKind::Dir {
            return Ok(false);
        }
        if !self.overwrite {
            return Err(Error::WouldOverwrite(dest.path.clone()));
        }
        if is_dir {
            fs::remove_dir_all(dest.proc_path()).map_err(|e| Error::io(dest.path.display(), e))?;
        } else {
            nix::unistd::unlinkat(
                dest.dir.as_ref(),
                dest.name.as_slice(),
                UnlinkatFlags::NoRemoveDir,
            )
            .map_err(|e| dest.io(e))?;
        }
        Ok(true)
    }

    /// Restore `e` at `dest`; `in_fresh` says its directory was just created (so empty).
    pub(super) fn restore_entry(&mut self, e: &Entry, dest: &Loc, in_fresh: bool) -> Result<()> {
        let fresh = in_fresh || self.prepare(dest, e.kind)?;
        if let Some(key) = e.hardlink.filter(|_| e.kind != NodeKind::Dir) {
            if let Some(first) = self.links.get(&key) {
                nix::unistd::linkat(
                    first.dir.as_ref(),
                    first.name.as_slice(),
                    dest.dir.as_ref(),
                    dest.name.as_slice(),
                    AtFlags::empty(),
                )
                .map_err(|err| dest.io(err))?;
                return Ok(());
            }
        }
        let mode = Mode::from_bits_truncate(e.mode);
        match e.kind {
            NodeKind::Dir => {
                if fresh {
                    nix::sys::stat::mkdirat(
                        dest.dir.as_ref(),
                        dest.name.as_slice(),
                        Mode::from_bits_truncate(0o700),
                    )
                    .map_err(|err| dest.io(err))?;
                }
                let dir = dest.open_dir()?;
                self.restore_tree(e.subtree.unwrap_or_default(), &dir, &dest.path, fresh)?;
                self.report.dirs += 1;
                // Mode and times once its files are written (a batch later, in `flush`).
                self.pending_dirs.push((dest.clone(), e.clone()));
                if self.pending_dirs.len() >= BATCH_DIRS {
                    self.flush()?;
                }
                return Ok(());
            }
            NodeKind::File => {
                self.create_file(e, dest)?;
                self.report.files += 1;
                // Content and metadata follow with the batch.
                if let Some(key) = e.hardlink {
                    self.links.insert(key, dest.clone());
                }
                return Ok(());
            }
            NodeKind::Symlink => {
                nix::unistd::symlinkat(
                    e.target.as_slice(),
                    dest.dir.as_ref(),
                    dest.name.as_slice(),
                )
                .map_err(|err| dest.io(err))?;
                self.report.others += 1;
            }
            NodeKind::Fifo => {
                nix::unistd::mkfifoat(dest.dir.as_ref(), dest.name.as_slice(), mode)
                    .map_err(|err| dest.io(err))?;
                self.report.others += 1;
            }
            NodeKind::Socket | NodeKind::CharDevice | NodeKind::BlockDevice => {
                let kind = match e.kind {
                    NodeKind::Socket => SFlag::S_IFSOCK,
                    NodeKind::CharDevice => SFlag::S_IFCHR,
                    _ => SFlag::S_IFBLK,
                };
                if let Err(err) = nix::sys::stat::mknodat(
                    dest.dir.as_ref(),
                    dest.name.as_slice(),
                    kind,
                    mode,
                    e.rdev,
                ) {
                    self.record(vec![format!(
                        "{}: cannot create special file: {err}",
                        dest.path.display()
                    )]);
                    return Ok(());
                }
                self.report.others += 1;
            }
        }
        if let Some(key) = e.hardlink.filter(|_| e.kind != NodeKind::Dir) {
            self.links.insert(key, dest.clone());
        }
        let errors = set_metadata(e, Meta::At(dest), self.is_root);
        self.record(errors);
        Ok(())
    }

    pub(super) fn record(&mut self, errors: Vec<String>) {
        for m in errors {
            tracing::warn!("{m}");
            self.report.errors.push(m);
        }
    }

    /// Queue the file for the next batch, whose threads write content and metadata in
    /// parallel; a big or hard-linked file is created now (see [`Pending`]).
    pub(super) fn create_file(&mut self, e: &Entry, dest: &Loc) -> Result<()> {
        let stored: u64 = e.chunks.iter().map(|c| u64::from(c.len)).sum();
        let created = e.hardlink.is_some() || stored >= PIECE_BYTES;
        if created {
            dest.open_file(OFlag::O_CREAT | OFlag::O_EXCL)?;
        }
        self.pending.push(Pending {
            loc: dest.clone(),
            entry: e.clone(),
            created,
        });
        self.pending_bytes += e.size;
        if self.pending.len() >= BATCH_FILES || self.pending_bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the content and metadata of the pending files, many pieces at a time, then the
    /// metadata of the directories finished before them.
    pub(super) fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let (reader, is_root, progress) = (self.reader, self.is_root, self.progress);
        let pieces = pieces(&batch);
        // A file not created yet is one piece (see `create_file`): its thread creates it,
        // writes it and sets its metadata through the one descriptor.
        let written: Vec<Result<Written>> = pieces
            .par_iter()
            .map(|p| {
                let f = &batch[p.file];
                let r = if f.created {
                    write_piece(reader, &f.entry, &f.loc, p, None)
                        .map(|(b, d)| Written::Piece(b, d))
                } else {
                    write_whole(reader, f, p, is_root)
                };
                if let Ok(Written::Piece(b, _) | Written::Whole(b, _)) = &r {
                    progress.bytes_done(*b);
                }
                r
            })
            .collect();
        // A damaged chunk is reported once per file, the first one, however many pieces met
        // damage (pieces are in file order).
        let mut damaged: Vec<Option<Damage>> = vec![None; batch.len()];
        for (p, r) in pieces.iter().zip(written) {
            match r? {
                Written::Piece(bytes, err) => {
                    self.report.bytes += bytes;
                    if damaged[p.file].is_none() {
                        damaged[p.file] = err;
                    }
                }
                Written::Whole(bytes, errors) => {
                    self.report.bytes += bytes;
                    self.record(errors);
                }
            }
        }
        let finished: Vec<Result<Vec<String>>> = batch
            .par_iter()
            .zip(damaged)
            .filter(|(f, _)| f.created || f.entry.chunks.is_empty())
            .map(|(f, damage)| {
                let (dest, e) = (&f.loc, &f.entry);
                if !f.created {
                    // No content: created here, with its size (all of it a hole).
                    let file = dest.open_file(OFlag::O_CREAT | OFlag::O_EXCL)?;
                    file.set_len(e.size)
                        .map_err(|err| Error::io(dest.path.display(), err))?;
                    return Ok(set_metadata(e, Meta::Fd(&file, &dest.path), is_root));
                }
                // After a damaged chunk the file ends at the bytes verified so far: padding it
                // to its size would leave zeros where the data was, a wrong byte that looks
                // restored.
                // An intact file got its size from its last piece; only a damaged file, or one
                // with a size but no chunks, is opened again here.
                let len = match &damage {
                    Some(d) => Some(d.at),
                    None if e.chunks.is_empty() && e.size > 0 => Some(e.size),
                    None => None,
                };
                if let Some(len) = len {
                    dest.open_file(OFlag::empty())?
                        .set_len(len)
                        .map_err(|err| Error::io(dest.path.display(), err))?;
                }
                let mut errors: Vec<String> = damage.into_iter().map(|d| d.msg).collect();
                errors.extend(set_metadata(e, Meta::At(dest), is_root));
                Ok(errors)
            })
            .collect();
        for r in finished {
            self.record(r?);
        }
        for (dest, e) in std::mem::take(&mut self.pending_dirs) {
            let errors = set_metadata(&e, Meta::At(&dest), is_root);
            self.record(errors);
        }
        Ok(())
    }

    pub(super) fn restore_tree(
        &mut self,
        id: BlobId,
        dir: &Arc<OwnedFd>,
        path: &Path,
        fresh: bool,
    ) -> Result<()> {
        let tree = match self.reader.read_tree(&id) {
            Ok(t) => t,
            Err(err) => {
                self.record(vec![format!(
                    "{}: cannot read directory: {err}",
                    path.display()
                )]);
                return Ok(());
            }
        };
        for e in &tree.entries {
            self.restore_entry(e, &Loc::child(dir, path, &e.name), fresh)?;
        }
        Ok(())
    }
}
