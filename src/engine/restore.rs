//! Restore: recreate a snapshot tree (or one entry of it) on the local filesystem.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

use rayon::prelude::*;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::AT_FDCWD;
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};

use super::error::{Error, Result};
use super::id::BlobId;
use super::lookup::Node;
use super::repo::BlobReader;
use super::tree::{Entry, HardlinkKey, NodeKind};

/// Options for a restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    pub overwrite: bool,
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
/// Files whose content is written in parallel at a time (and at the end of each directory).
const BATCH_FILES: usize = 256;

struct Restorer<'a> {
    reader: &'a BlobReader,
    overwrite: bool,
    is_root: bool,
    links: HashMap<HardlinkKey, PathBuf>,
    report: RestoreReport,
    /// Files created whose content and metadata are still to be written.
    pending: Vec<(PathBuf, Entry)>,
    progress: &'a dyn RestoreProgress,
}

fn timespec(t: super::tree::Timestamp) -> TimeSpec {
    TimeSpec::new(t.secs, i64::from(t.nanos))
}

impl Restorer<'_> {
    fn fail(&mut self, path: &Path, msg: impl std::fmt::Display) {
        let m = format!("{}: {msg}", path.display());
        tracing::warn!("{m}");
        self.report.errors.push(m);
    }

    /// Make room for `dest`; Ok(false) means an existing directory is reused.
    fn prepare(&mut self, dest: &Path, kind: NodeKind) -> Result<bool> {
        let Ok(meta) = fs::symlink_metadata(dest) else {
            return Ok(true);
        };
        if meta.is_dir() && kind == NodeKind::Dir {
            return Ok(false);
        }
        if !self.overwrite {
            return Err(Error::WouldOverwrite(dest.to_path_buf()));
        }
        let res = if meta.is_dir() {
            fs::remove_dir_all(dest)
        } else {
            fs::remove_file(dest)
        };
        res.map_err(|e| Error::io(dest.display(), e))?;
        Ok(true)
    }

    fn restore_entry(&mut self, e: &Entry, dest: &Path) -> Result<()> {
        let fresh = self.prepare(dest, e.kind)?;
        if let Some(key) = e.hardlink.filter(|_| e.kind != NodeKind::Dir) {
            if let Some(first) = self.links.get(&key) {
                fs::hard_link(first, dest).map_err(|err| Error::io(dest.display(), err))?;
                return Ok(());
            }
        }
        match e.kind {
            NodeKind::Dir => {
                if fresh {
                    fs::create_dir(dest).map_err(|err| Error::io(dest.display(), err))?;
                }
                self.restore_tree(e.subtree.unwrap_or_default(), dest)?;
                self.report.dirs += 1;
            }
            NodeKind::File => {
                self.create_file(e, dest)?;
                self.report.files += 1;
                // Content and metadata follow with the batch.
                if let Some(key) = e.hardlink {
                    self.links.insert(key, dest.to_path_buf());
                }
                return Ok(());
            }
            NodeKind::Symlink => {
                std::os::unix::fs::symlink(OsStr::from_bytes(&e.target), dest)
                    .map_err(|err| Error::io(dest.display(), err))?;
                self.report.others += 1;
            }
            NodeKind::Fifo => {
                nix::unistd::mkfifo(dest, Mode::from_bits_truncate(e.mode))
                    .map_err(|err| Error::io(dest.display(), err.into()))?;
                self.report.others += 1;
            }
            NodeKind::Socket | NodeKind::CharDevice | NodeKind::BlockDevice => {
                let kind = match e.kind {
                    NodeKind::Socket => SFlag::S_IFSOCK,
                    NodeKind::CharDevice => SFlag::S_IFCHR,
                    _ => SFlag::S_IFBLK,
                };
                if let Err(err) =
                    nix::sys::stat::mknod(dest, kind, Mode::from_bits_truncate(e.mode), e.rdev)
                {
                    self.fail(dest, format_args!("cannot create special file: {err}"));
                    return Ok(());
                }
                self.report.others += 1;
            }
        }
        if let Some(key) = e.hardlink.filter(|_| e.kind != NodeKind::Dir) {
            self.links.insert(key, dest.to_path_buf());
        }
        self.set_metadata(e, dest);
        Ok(())
    }

    /// Create the file now (so hard links to it can be made at once); its content and
    /// metadata are written with the next batch, in parallel.
    fn create_file(&mut self, e: &Entry, dest: &Path) -> Result<()> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dest)
            .map_err(|err| Error::io(dest.display(), err))?;
        self.pending.push((dest.to_path_buf(), e.clone()));
        if self.pending.len() >= BATCH_FILES {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the content and metadata of the pending files, several at a time.
    fn flush(&mut self) -> Result<()> {
        let batch = std::mem::take(&mut self.pending);
        let (reader, is_root, progress) = (self.reader, self.is_root, self.progress);
        let results: Vec<Result<(u64, Vec<String>)>> = batch
            .par_iter()
            .map(|(dest, e)| {
                let (bytes, mut errors) = write_content(reader, e, dest)?;
                progress.bytes_done(bytes);
                errors.extend(set_metadata(e, dest, is_root));
                Ok((bytes, errors))
            })
            .collect();
        for r in results {
            let (bytes, errors) = r?;
            self.report.bytes += bytes;
            for m in errors {
                tracing::warn!("{m}");
                self.report.errors.push(m);
            }
        }
        Ok(())
    }

    fn set_metadata(&mut self, e: &Entry, dest: &Path) {
        for m in set_metadata(e, dest, self.is_root) {
            tracing::warn!("{m}");
            self.report.errors.push(m);
        }
    }

    fn restore_tree(&mut self, id: BlobId, dest: &Path) -> Result<()> {
        let tree = match self.reader.read_tree(&id) {
            Ok(t) => t,
            Err(err) => {
                self.fail(dest, format_args!("cannot read directory: {err}"));
                return Ok(());
            }
        };
        for e in &tree.entries {
            self.restore_entry(e, &dest.join(OsStr::from_bytes(&e.name)))?;
        }
        // The directory's own metadata comes after its files are complete.
        self.flush()
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
    let mut r = Restorer {
        reader,
        overwrite: opts.overwrite,
        is_root: nix::unistd::geteuid().is_root(),
        links: HashMap::new(),
        report: RestoreReport::default(),
        pending: Vec::new(),
        progress,
    };
    fs::create_dir_all(&opts.target).map_err(|e| Error::io(opts.target.display(), e))?;
    match node {
        Node::Root(id) => r.restore_tree(*id, &opts.target)?,
        Node::Entry(e) => r.restore_entry(e, &opts.target.join(OsStr::from_bytes(&e.name)))?,
    }
    r.flush()?;
    Ok(r.report)
}

/// Write a file's content into the (already created) file, leaving holes for zero blocks;
/// returns the bytes written and the problems (damaged chunks) met.
fn write_content(reader: &BlobReader, e: &Entry, dest: &Path) -> Result<(u64, Vec<String>)> {
    let f = OpenOptions::new()
        .write(true)
        .open(dest)
        .map_err(|err| Error::io(dest.display(), err))?;
    let mut errors = Vec::new();
    let mut written = 0;
    let mut pos: u64 = 0;
    for c in &e.chunks {
        let data = match reader.read_chunk(c) {
            Ok(d) => d,
            Err(err) => {
                errors.push(format!("{}: cannot restore content: {err}", dest.display()));
                break;
            }
        };
        // Skip whole zero blocks so sparse files stay sparse.
        for block in data.chunks(HOLE_BLOCK) {
            if block.len() < HOLE_BLOCK || block.iter().any(|&b| b != 0) {
                f.write_all_at(block, pos)
                    .map_err(|err| Error::io(dest.display(), err))?;
            }
            pos += block.len() as u64;
        }
        written += data.len() as u64;
    }
    f.set_len(e.size)
        .map_err(|err| Error::io(dest.display(), err))?;
    Ok((written, errors))
}

/// Owner, extended attributes, mode and times of a restored entry; returns the problems.
fn set_metadata(e: &Entry, dest: &Path, is_root: bool) -> Vec<String> {
    let mut errors = Vec::new();
    let mut fail = |msg: std::fmt::Arguments| errors.push(format!("{}: {msg}", dest.display()));
    if is_root {
        if let Err(err) = nix::unistd::fchownat(
            AT_FDCWD,
            dest,
            Some(Uid::from_raw(e.uid)),
            Some(Gid::from_raw(e.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            fail(format_args!("cannot set owner: {err}"));
        }
    }
    // Extended attributes after chown, which drops security.capability, and before chmod,
    // which may take away the write permission a non-root user needs to set them.
    for (k, v) in &e.xattrs {
        if let Err(err) = xattr::set(dest, OsStr::from_bytes(k), v) {
            fail(format_args!(
                "cannot set extended attribute {}: {err}",
                String::from_utf8_lossy(k)
            ));
        }
    }
    // After chown, which clears set-id bits; symlinks have no mode of their own.
    if e.kind != NodeKind::Symlink {
        use std::os::unix::fs::PermissionsExt;
        if let Err(err) = fs::set_permissions(dest, fs::Permissions::from_mode(e.mode & 0o7777)) {
            fail(format_args!("cannot set mode: {err}"));
        }
    }
    // atime is not recorded (reading files would change every tree); it is set to mtime.
    let t = timespec(e.mtime);
    if let Err(err) =
        nix::sys::stat::utimensat(AT_FDCWD, dest, &t, &t, UtimensatFlags::NoFollowSymlink)
    {
        fail(format_args!("cannot set times: {err}"));
    }
    errors
}
