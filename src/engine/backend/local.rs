//! A backend on a local directory. Layout and crash-safety rules: docs/FORMAT.md.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{Backend, Kind};
use crate::engine::error::{Error, Result};
use crate::engine::lock::{hostname, pid_alive};

/// Folder for in-progress writes; files there are `<host>.<pid>.<random>`.
const TMP_DIR: &str = "tmp";

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
            f.write_all(data)?;
            f.sync_all()
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(tmp.display(), e));
        }
        Ok(tmp)
    }

    fn ensure_parent(&self, target: &Path) -> Result<()> {
        if let Some(parent) = target.parent() {
            if !parent.is_dir() {
                fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
                if let Some(gp) = parent.parent() {
                    sync_dir(gp)?;
                }
            }
        }
        Ok(())
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
            return Err(Error::io(target.display(), e));
        }
        sync_dir(target.parent().unwrap_or(&self.root))
    }

    fn put_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<bool> {
        let target = self.path(kind, name);
        self.ensure_parent(&target)?;
        let tmp = self.write_tmp(data)?;
        // link(2) fails if the target exists: an atomic create-if-absent of complete content.
        let res = fs::hard_link(&tmp, &target);
        let _ = fs::remove_file(&tmp);
        match res {
            Ok(()) => {
                sync_dir(target.parent().unwrap_or(&self.root))?;
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
        let mut stack = vec![(dir, 0)];
        while let Some((d, depth)) = stack.pop() {
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
                // Packs sit one shard folder deep: packs/<first two hex digits>/<id>.
                if ft.is_dir() && kind == Kind::Pack && depth == 0 {
                    stack.push((ent.path(), 1));
                } else if ft.is_file() && (kind != Kind::Pack || depth == 1) {
                    if let Some(n) = ent.file_name().to_str() {
                        out.push(n.to_string());
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
            Ok(()) => sync_dir(p.parent().unwrap_or(&self.root)),
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
                removed += 1;
            }
        }
        Ok(removed)
    }
}
