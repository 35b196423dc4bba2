//! Restore: recreate a snapshot tree (or one entry of it) on the local filesystem.
//!
//! Like the backup walk, everything is created relative to open directory handles
//! (`mkdirat`, `openat`, `linkat`, … with `O_NOFOLLOW`), so paths deeper than PATH_MAX restore
//! and a symlink planted in the target cannot redirect the restore.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};
use rayon::prelude::*;

use crate::engine::error::{Error, Result};
use crate::engine::format::id::BlobId;
use crate::engine::format::tree::{Entry, HardlinkKey, NodeKind};
use crate::engine::lookup::Node;
use crate::engine::store::repo::BlobReader;

/// Options for a restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    pub overwrite: bool,
    /// Threads writing content; `None`: [`crate::engine::localfs::threads::default_jobs`].
    pub jobs: Option<usize>,
}

/// Receives progress while a restore runs (from several threads).
pub trait RestoreProgress: Sync {
    /// `bytes` more of file content were written.
    fn bytes_done(&self, _bytes: u64) {}
}

/// A progress sink that ignores everything.
pub struct NoRestoreProgress;
impl RestoreProgress for NoRestoreProgress {}

/// The bytes of file content below a node, for progress totals (reads only trees).
pub fn total_bytes(reader: &BlobReader, node: &Node) -> Result<u64> {
    fn tree(reader: &BlobReader, id: &BlobId) -> Result<u64> {
        let t = reader.read_tree(id)?;
        let mut sum = 0;
        for e in &t.entries {
            sum += match e.kind {
                NodeKind::Dir => tree(reader, &e.subtree.unwrap_or_default())?,
                NodeKind::File => e.size,
                _ => 0,
            };
        }
        Ok(sum)
    }
    match node {
        Node::Root(id) => tree(reader, id),
        Node::Entry(e) if e.kind == NodeKind::Dir => tree(reader, &e.subtree.unwrap_or_default()),
        Node::Entry(e) => Ok(e.size),
    }
}

/// What a restore did.
#[derive(Clone, Debug, Default)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    /// Problems that did not stop the restore (damaged files, metadata that could not be set).
    pub errors: Vec<String>,
}

/// Zero runs of at least this many bytes become holes.
const HOLE_BLOCK: usize = 4096;
/// Files whose content is written in parallel at a time; a batch also ends at this many bytes
/// of content or this many finished directories (whose metadata waits for their files).
const BATCH_FILES: usize = 1024;
const BATCH_BYTES: u64 = 512 << 20;
const BATCH_DIRS: usize = 4096;
/// Big files are written as pieces of about this size, in parallel.
const PIECE_BYTES: u64 = 16 << 20;

/// A place in the target: a name in an open directory, and its path for messages.
#[derive(Clone)]
struct Loc {
    dir: Arc<OwnedFd>,
    name: Vec<u8>,
    path: PathBuf,
}

impl Loc {
    fn child(dir: &Arc<OwnedFd>, path: &Path, name: &[u8]) -> Loc {
        Loc {
            dir: dir.clone(),
            name: name.to_vec(),
            path: path.join(OsStr::from_bytes(name)),
        }
    }

    /// A path naming this entry through the directory handle (short whatever the depth).
    fn proc_path(&self) -> PathBuf {
        let mut p = format!("/proc/self/fd/{}/", self.dir.as_raw_fd()).into_bytes();
        p.extend_from_slice(&self.name);
        PathBuf::from(OsStr::from_bytes(&p))
    }

    fn io(&self, e: nix::errno::Errno) -> Error {
        Error::io(self.path.display(), io::Error::from_raw_os_error(e as i32))
    }

    fn open_dir(&self) -> Result<Arc<OwnedFd>> {
        nix::fcntl::openat(
            self.dir.as_ref(),
            self.name.as_slice(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(Arc::new)
        .map_err(|e| self.io(e))
    }

    fn open_file(&self, flags: OFlag) -> Result<File> {
        nix::fcntl::openat(
            self.dir.as_ref(),
            self.name.as_slice(),
            OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | flags,
            Mode::from_bits_truncate(0o600),
        )
        .map(File::from)
        .map_err(|e| self.io(e))
    }
}

struct Restorer<'a> {
    reader: &'a BlobReader,
    overwrite: bool,
    is_root: bool,
    links: HashMap<HardlinkKey, Loc>,
    report: RestoreReport,
    /// Files whose content and metadata are still to be written.
    pending: Vec<Pending>,
    pending_bytes: u64,
    /// Directories whose entries all exist; their metadata follows their files' content.
    pending_dirs: Vec<(Loc, Entry)>,
    progress: &'a dyn RestoreProgress,
}

/// A file of the next batch. Most files are created by the thread that writes them, in one
/// go; a big file (written in pieces by several threads) or a hard-linked one (whose other
/// names are linked to it during the walk) is `created` by the walk already.
struct Pending {
    loc: Loc,
    entry: Entry,
    created: bool,
}

/// Part of a file to write: chunks `first..end` of `batch[file]`, starting at byte `offset`.
struct Piece {
    file: usize,
    first: usize,
    end: usize,
    offset: u64,
}

/// Cut each file of a batch into pieces of about [`PIECE_BYTES`].
fn pieces(batch: &[Pending]) -> Vec<Piece> {
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

fn timespec(t: crate::engine::format::tree::Timestamp) -> TimeSpec {
    TimeSpec::new(t.secs, i64::from(t.nanos))
}

impl Restorer<'_> {
    /// Make room for `dest`; Ok(false) means an existing directory is reused.
    fn prepare(&mut self, dest: &Loc, kind: NodeKind) -> Result<bool> {
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
    fn restore_entry(&mut self, e: &Entry, dest: &Loc, in_fresh: bool) -> Result<()> {
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

    fn record(&mut self, errors: Vec<String>) {
        for m in errors {
            tracing::warn!("{m}");
            self.report.errors.push(m);
        }
    }

    /// Queue the file for the next batch, whose threads write content and metadata in
    /// parallel; a big or hard-linked file is created now (see [`Pending`]).
    fn create_file(&mut self, e: &Entry, dest: &Loc) -> Result<()> {
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
    fn flush(&mut self) -> Result<()> {
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

    fn restore_tree(
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

/// Restore `node`: the root's contents go into the target directory, an entry goes to
/// `target/<its name>`.
pub fn restore(
    reader: &BlobReader,
    node: &Node,
    opts: &RestoreOptions,
    progress: &dyn RestoreProgress,
) -> Result<RestoreReport> {
    crate::engine::localfs::threads::pool(opts.jobs, "restore")?
        .install(|| restore_in_pool(reader, node, opts, progress))
}

fn restore_in_pool(
    reader: &BlobReader,
    node: &Node,
    opts: &RestoreOptions,
    progress: &dyn RestoreProgress,
) -> Result<RestoreReport> {
    let mut r = Restorer {
        reader,
        overwrite: opts.overwrite,
        is_root: nix::unistd::geteuid().is_root(),
        links: HashMap::new(),
        report: RestoreReport::default(),
        pending: Vec::new(),
        pending_bytes: 0,
        pending_dirs: Vec::new(),
        progress,
    };
    fs::create_dir_all(&opts.target).map_err(|e| Error::io(opts.target.display(), e))?;
    let target = nix::fcntl::open(
        &opts.target,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(Arc::new)
    .map_err(|e| {
        Error::io(
            opts.target.display(),
            io::Error::from_raw_os_error(e as i32),
        )
    })?;
    match node {
        // The target may hold files already: nothing in it counts as fresh.
        Node::Root(id) => r.restore_tree(*id, &target, &opts.target, false)?,
        Node::Entry(e) => r.restore_entry(e, &Loc::child(&target, &opts.target, &e.name), false)?,
    }
    r.flush()?;
    Ok(r.report)
}

/// Where a file's content could not be restored, and why.
#[derive(Clone)]
struct Damage {
    at: u64,
    msg: String,
}

/// What a task of a batch did: a piece of a file created before (bytes written, damage met),
/// or a whole file it created (bytes written, problems: damage, metadata).
enum Written {
    Piece(u64, Option<Damage>),
    Whole(u64, Vec<String>),
}

/// Create a file of one piece, write it, cut it where damage stopped it, set its metadata.
fn write_whole(reader: &BlobReader, f: &Pending, piece: &Piece, is_root: bool) -> Result<Written> {
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
fn write_piece(
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
enum Meta<'a> {
    At(&'a Loc),
    Fd(&'a File, &'a Path),
}

/// Owner, extended attributes, mode and times of a restored entry; returns the problems.
fn set_metadata(e: &Entry, to: Meta, is_root: bool) -> Vec<String> {
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
