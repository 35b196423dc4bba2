//! A backend on a local directory. Layout and crash-safety rules: docs/FORMAT.md.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{Backend, Kind};
use crate::engine::error::{Error, Result};
use crate::engine::lock::{hostname, pid_alive};

/// Folder for in-progress writes; files there are `<host>.<pid>.<random>`.
const TMP_DIR: &str = "tmp";

/// Opt-in trace of durable steps, for the power-loss test (`tests/faults.rs`): with
/// `YESTER_IO_TRACE=FILE`, each step appends one line `OP PATH [PATH]` (paths relative to the
/// repository) to FILE, and each fsynced temp file gets a hard link in `FILE.files/` (named
/// like the temp file), so the test can rebuild the repository as a power cut after any step
/// would leave it. Off, it costs one cached environment lookup per step.
fn trace_file() -> Option<&'static Path> {
    static TRACE: OnceLock<Option<PathBuf>> = OnceLock::new();
    TRACE
        .get_or_init(|| std::env::var_os("YESTER_IO_TRACE").map(PathBuf::from))
        .as_deref()
}

/// A repository stored in a local directory.
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        match kind {
            Kind::Config => self.root.join(name),
            // Packs are many: shard them by the first two hex digits.
            Kind::Pack if name.len() > 2 => self.root.join(kind.dir()).join(&name[..2]).join(name),
            _ => self.root.join(kind.dir()).join(name),
        }
    }

    /// Record one durable step when tracing (see [`trace_file`]). Best effort: the trace is for
    /// tests, so a failure to write it must not fail the repository operation.
    fn trace(&self, op: &str, paths: &[&Path]) {
        let Some(file) = trace_file() else {
            return;
        };
        let mut line = op.to_string();
        for p in paths {
            line.push(' ');
            line.push_str(&p.strip_prefix(&self.root).unwrap_or(p).to_string_lossy());
        }
        line.push('\n');
        // One write(2) with O_APPEND per line, so lines of concurrent writers never interleave.
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(file) {
            let _ = f.write_all(line.as_bytes());
        }
    }

    /// Keep the content of a just-fsynced temp file for the trace (a hard link survives the
    /// rename and the unlink).
    fn trace_synced(&self, tmp: &Path) {
        let Some(file) = trace_file() else {
            return;
        };
        let mut dir = file.as_os_str().to_owned();
        dir.push(".files");
        let dir = PathBuf::from(dir);
        let _ = fs::create_dir_all(&dir);
        if let Some(name) = tmp.file_name() {
            let _ = fs::hard_link(tmp, dir.join(name));
        }
        self.trace("synced", &[tmp]);
    }

    /// fsync a directory of this repository so a rename or unlink in it is durable.
    fn sync_dir(&self, dir: &Path) -> Result<()> {
        sync_dir(dir)?;
        self.trace("fsyncdir", &[dir]);
        Ok(())
    }

    fn tmp_path(&self) -> Result<PathBuf> {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).map_err(|e| Error::Invalid(format!("random: {e}")))?;
        Ok(self.root.join(TMP_DIR).join(format!(
            "{}.{}.{}",
            hostname(),
            std::process::id(),
            hex::encode(r)
        )))
    }

    /// Write `data` to a fresh temporary file and fsync it.
    fn write_tmp(&self, data: &[u8]) -> Result<PathBuf> {
        let tmp = self.tmp_path()?;
        let res = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            self.trace("create", &[&tmp]);
            super::direct::write_all(&mut f, data)?;
            f.sync_all()
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            self.trace("unlink", &[&tmp]);
            return Err(Error::io(tmp.display(), e));
        }
        self.trace_synced(&tmp);
        Ok(tmp)
    }

    fn ensure_parent(&self, target: &Path) -> Result<()> {
        match target.parent() {
            Some(parent) => self.ensure_dir(parent),
            None => Ok(()),
        }
    }

    /// Create `dir` and any missing ancestors one at a time, fsyncing the parent of each, so
    /// every new level is durable (`catalogs/<source>/` in a repository made before
    /// `catalogs/` existed creates two).
    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(up) = dir.parent() {
            self.ensure_dir(up)?;
        }
        match fs::create_dir(dir) {
            Ok(()) => {}
            // Another writer made it meanwhile; it fsyncs the parent itself.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(Error::io(dir.display(), e)),
        }
        self.trace("mkdir", &[dir]);
        match dir.parent() {
            Some(up) => self.sync_dir(up),
            None => Ok(()),
        }
    }
}

/// fsync a directory so a rename or unlink in it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir.display(), e))
}

impl Backend for LocalDir {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn describe(&self, kind: Kind, name: &str) -> String {
        self.path(kind, name).display().to_string()
    }

    fn exists(&self, kind: Kind, name: &str) -> Result<bool> {
        let p = self.path(kind, name);
        match fs::symlink_metadata(&p) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io(p.display(), e)),
        }
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()> {
        let target = self.path(kind, name);
        self.ensure_parent(&target)?;
        let tmp = self.write_tmp(data)?;
        if let Err(e) = fs::rename(&tmp, &target) {
            let _ = fs::remove_file(&tmp);
            self.trace("unlink", &[&tmp]);
            return Err(Error::io(target.display(), e));
        }
        self.trace("rename", &[&tmp, &target]);
        self.sync_dir(target.parent().unwrap_or(&self.root))
    }

    fn put_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<bool> {
        let target = self.path(kind, name);
        self.ensure_parent(&target)?;
        let tmp = self.write_tmp(data)?;
        // link(2) fails if the target exists: an atomic create-if-absent of complete content.
        let res = fs::hard_link(&tmp, &target);
        if res.is_ok() {
            self.trace("link", &[&tmp, &target]);
        }
        let _ = fs::remove_file(&tmp);
        self.trace("unlink", &[&tmp]);
        match res {
            Ok(()) => {
                self.sync_dir(target.parent().unwrap_or(&self.root))?;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(target.display(), e)),
        }
    }

    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>> {
        let p = self.path(kind, name);
        fs::read(&p).map_err(|e| Error::io(p.display(), e))
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let p = self.path(kind, name);
        let res = (|| {
            let mut f = File::open(&p)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 28));
            f.take(len).read_to_end(&mut buf)?;
            Ok(buf)
        })();
        res.map_err(|e| Error::io(p.display(), e))
    }

    fn size(&self, kind: Kind, name: &str) -> Result<u64> {
        let p = self.path(kind, name);
        fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| Error::io(p.display(), e))
    }

    fn list(&self, kind: Kind) -> Result<Vec<String>> {
        let dir = self.root.join(kind.dir());
        let mut out = Vec::new();
        // Packs sit one shard folder deep (packs/<first two hex digits>/<id>, listed by id),
        // catalogue generations one source folder deep (listed as <source>/<generation>).
        let nested = matches!(kind, Kind::Pack | Kind::CatalogGen);
        let mut stack: Vec<(PathBuf, Option<String>)> = vec![(dir, None)];
        while let Some((d, folder)) = stack.pop() {
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(d.display(), e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| Error::io(d.display(), e))?;
                let ft = ent
                    .file_type()
                    .map_err(|e| Error::io(ent.path().display(), e))?;
                let Some(n) = ent.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if ft.is_dir() && nested && folder.is_none() {
                    stack.push((ent.path(), Some(n)));
                } else if ft.is_file() && nested == folder.is_some() {
                    match (&folder, kind) {
                        (Some(f), Kind::CatalogGen) => out.push(format!("{f}/{n}")),
                        _ => out.push(n),
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let p = self.path(kind, name);
        match fs::remove_file(&p) {
            Ok(()) => {
                self.trace("delete", &[&p]);
                self.sync_dir(p.parent().unwrap_or(&self.root))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(p.display(), e)),
        }
    }

    fn create(&self) -> Result<()> {
        if self.root.exists() {
            let mut rd = fs::read_dir(&self.root).map_err(|e| Error::io(self.root.display(), e))?;
            if rd.next().is_some() {
                return Err(Error::AlreadyExists(self.root.clone()));
            }
        }
        for d in Kind::FOLDERS
            .iter()
            .map(|k| k.dir())
            .chain(std::iter::once(TMP_DIR))
        {
            let p = self.root.join(d);
            fs::create_dir_all(&p).map_err(|e| Error::io(p.display(), e))?;
        }
        sync_dir(&self.root)?;
        if let Some(parent) = self.root.parent() {
            if !parent.as_os_str().is_empty() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    fn clean_incomplete(&self) -> Result<usize> {
        let dir = self.root.join(TMP_DIR);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io(dir.display(), e)),
        };
        let host = hostname();
        let mut removed = 0;
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            // <host>.<pid>.<random>: only files of dead writers on this host are ours to remove.
            let mut parts = name.rsplitn(3, '.');
            let (_rand, pid, h) = (parts.next(), parts.next(), parts.next());
            let dead = h == Some(host.as_str())
                && pid
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_some_and(|p| !pid_alive(p));
            if dead && fs::remove_file(ent.path()).is_ok() {
                self.trace("unlink", &[&ent.path()]);
                removed += 1;
            }
        }
        Ok(removed)
    }
}
