//! A backend on a local directory. Layout and crash-safety rules: docs/FORMAT.md.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};

use super::lock::{hostname, pid_alive};
use super::{Backend, Kind, ObjectInfo, StoreError, StoreErrorKind, StoreResult, Suffix};

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
    /// Dead writers' temp files are removed before this handle's first write (see
    /// [`LocalDir::remove_dead_temp_files`]).
    cleaned: Once,
}

impl LocalDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalDir {
            root: root.into(),
            cleaned: Once::new(),
        }
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
    fn sync_dir(&self, dir: &Path) -> StoreResult<()> {
        sync_dir(dir)?;
        self.trace("fsyncdir", &[dir]);
        Ok(())
    }

    fn tmp_path(&self) -> StoreResult<PathBuf> {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Other,
                self.location(),
                format!("random: {e}"),
            )
        })?;
        Ok(self.root.join(TMP_DIR).join(format!(
            "{}.{}.{}",
            hostname(),
            std::process::id(),
            hex::encode(r)
        )))
    }

    /// Write `data` to a fresh temporary file and fsync it.
    fn write_tmp(&self, data: &[u8]) -> StoreResult<PathBuf> {
        self.cleaned.call_once(|| self.remove_dead_temp_files());
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
            return Err(StoreError::io(tmp.display(), &e));
        }
        self.trace_synced(&tmp);
        Ok(tmp)
    }

    /// Remove the temp files of writers on this host that died mid-put: every `tmp/` entry
    /// named `<this host>.<pid>.<random>` whose pid is not a live process. Other hosts' files
    /// and live writers' are left alone. Best effort (a leftover costs only disk space), and
    /// done once per handle, before its first write: every process that writes (backup, prune,
    /// a catalogue edit, even taking a lock) thus cleans up after its dead predecessors.
    fn remove_dead_temp_files(&self) {
        let dir = self.root.join(TMP_DIR);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                if e.kind() != ErrorKind::NotFound {
                    tracing::warn!("{}: {e}", dir.display());
                }
                return;
            }
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
        if removed > 0 {
            tracing::info!("removed {removed} temporary files left by interrupted writers");
        }
    }

    fn ensure_parent(&self, target: &Path) -> StoreResult<()> {
        match target.parent() {
            Some(parent) => self.ensure_dir(parent),
            None => Ok(()),
        }
    }

    /// Create `dir` and any missing ancestors one at a time, fsyncing the parent of each, so
    /// every new level is durable (`catalogs/<source>/` in a repository made before
    /// `catalogs/` existed creates two).
    fn ensure_dir(&self, dir: &Path) -> StoreResult<()> {
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
            Err(e) => return Err(StoreError::io(dir.display(), &e)),
        }
        self.trace("mkdir", &[dir]);
        match dir.parent() {
            Some(up) => self.sync_dir(up),
            None => Ok(()),
        }
    }
}

/// fsync a directory so a rename or unlink in it is durable.
fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir.display(), &e))
}

impl Backend for LocalDir {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn describe(&self, kind: Kind, name: &str) -> String {
        self.path(kind, name).display().to_string()
    }

    fn exists(&self, kind: Kind, name: &str) -> StoreResult<bool> {
        let p = self.path(kind, name);
        match fs::symlink_metadata(&p) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io(p.display(), &e)),
        }
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> StoreResult<()> {
        let target = self.path(kind, name);
        self.ensure_parent(&target)?;
        let tmp = self.write_tmp(data)?;
        // rename(2) replaces an object of the same name, which under the storage contract holds
        // the same bytes (or is the caller's own lock record).
        if let Err(e) = fs::rename(&tmp, &target) {
            let _ = fs::remove_file(&tmp);
            self.trace("unlink", &[&tmp]);
            return Err(StoreError::io(target.display(), &e));
        }
        self.trace("rename", &[&tmp, &target]);
        self.sync_dir(target.parent().unwrap_or(&self.root))
    }

    fn put_new(&self, kind: Kind, name: &str, data: &[u8]) -> StoreResult<bool> {
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
            Err(e) => Err(StoreError::io(target.display(), &e)),
        }
    }

    fn get(&self, kind: Kind, name: &str) -> StoreResult<Vec<u8>> {
        let p = self.path(kind, name);
        fs::read(&p).map_err(|e| StoreError::io(p.display(), &e))
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        let p = self.path(kind, name);
        let res = (|| {
            let mut f = File::open(&p)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0).min(1 << 28));
            f.take(len).read_to_end(&mut buf)?;
            Ok(buf)
        })();
        res.map_err(|e: std::io::Error| StoreError::io(p.display(), &e))
    }

    fn get_suffix(&self, kind: Kind, name: &str, n: u64) -> StoreResult<Suffix> {
        let p = self.path(kind, name);
        let res = (|| {
            let mut f = File::open(&p)?;
            // The size of the open file, so bytes and size agree even if the name were replaced.
            let size = f.metadata()?.len();
            let start = size.saturating_sub(n);
            f.seek(SeekFrom::Start(start))?;
            let mut bytes = Vec::with_capacity(usize::try_from(size - start).unwrap_or(0));
            f.take(size - start).read_to_end(&mut bytes)?;
            Ok(Suffix { bytes, size })
        })();
        res.map_err(|e: std::io::Error| StoreError::io(p.display(), &e))
    }

    fn list(&self, kind: Kind) -> StoreResult<Vec<ObjectInfo>> {
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
                Err(e) => return Err(StoreError::io(d.display(), &e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| StoreError::io(d.display(), &e))?;
                let ft = ent
                    .file_type()
                    .map_err(|e| StoreError::io(ent.path().display(), &e))?;
                let Some(n) = ent.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if ft.is_dir() && nested && folder.is_none() {
                    stack.push((ent.path(), Some(n)));
                } else if ft.is_file() && nested == folder.is_some() {
                    let n = match (&folder, kind) {
                        (Some(f), Kind::CatalogGen) => format!("{f}/{n}"),
                        _ => n,
                    };
                    let size = match ent.metadata() {
                        Ok(m) => m.len(),
                        // Deleted since the listing read its name: it is not there any more.
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(StoreError::io(ent.path().display(), &e)),
                    };
                    out.push(ObjectInfo { name: n, size });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, kind: Kind, name: &str) -> StoreResult<()> {
        let p = self.path(kind, name);
        match fs::remove_file(&p) {
            Ok(()) => {
                self.trace("delete", &[&p]);
                self.sync_dir(p.parent().unwrap_or(&self.root))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(p.display(), &e)),
        }
    }

    fn create(&self) -> StoreResult<()> {
        let root = self.root.display();
        if self.root.exists() {
            let mut rd = fs::read_dir(&self.root).map_err(|e| StoreError::io(&root, &e))?;
            if rd.next().is_some() {
                return Err(StoreError::new(
                    StoreErrorKind::AlreadyExists,
                    self.location(),
                    "already exists and is not empty",
                ));
            }
        }
        for d in Kind::FOLDERS
            .iter()
            .map(|k| k.dir())
            .chain(std::iter::once(TMP_DIR))
        {
            let p = self.root.join(d);
            fs::create_dir_all(&p).map_err(|e| StoreError::io(p.display(), &e))?;
        }
        sync_dir(&self.root)?;
        if let Some(parent) = self.root.parent() {
            if !parent.as_os_str().is_empty() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_sizes_suffixes_and_create_if_absent_on_disk() {
        let d = tempfile::tempdir().unwrap();
        let be = LocalDir::new(d.path().join("r"));
        be.create().unwrap();
        let pack = "ab".repeat(32);
        be.put(Kind::Pack, &pack, b"0123456789").unwrap();
        be.put(Kind::Index, "i", b"xyz").unwrap();
        assert!(d.path().join("r/packs/ab").join(&pack).is_file());
        let listed = be.list(Kind::Pack).unwrap();
        assert_eq!(
            listed,
            [ObjectInfo {
                name: pack.clone(),
                size: 10
            }]
        );
        let s = be.get_suffix(Kind::Pack, &pack, 4).unwrap();
        assert_eq!((s.bytes.as_slice(), s.size), (&b"6789"[..], 10));
        let s = be.get_suffix(Kind::Index, "i", 100).unwrap();
        assert_eq!((s.bytes.as_slice(), s.size), (&b"xyz"[..], 3));
        assert!(be.put_new(Kind::Lock, "l", b"1").unwrap());
        assert!(!be.put_new(Kind::Lock, "l", b"2").unwrap());
        assert!(be.get(Kind::Snapshot, "nope").unwrap_err().is_not_found());
        assert!(be
            .get_suffix(Kind::Pack, "nope", 1)
            .unwrap_err()
            .is_not_found());
        let again = LocalDir::new(d.path().join("r")).create().unwrap_err();
        assert_eq!(again.kind, StoreErrorKind::AlreadyExists);
    }

    #[test]
    fn dead_writers_temp_files_go_before_the_first_write() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("r");
        LocalDir::new(&root).create().unwrap();
        let host = hostname();
        // A pid above the kernel's limit (2^22) never runs.
        let dead = root.join(TMP_DIR).join(format!("{host}.4194400.00"));
        let live = root
            .join(TMP_DIR)
            .join(format!("{host}.{}.00", std::process::id()));
        let remote = root.join(TMP_DIR).join("elsewhere.4194400.00");
        for p in [&dead, &live, &remote] {
            fs::write(p, b"half an object").unwrap();
        }
        let be = LocalDir::new(&root);
        be.list(Kind::Pack).unwrap();
        assert!(dead.exists(), "reading removes nothing");
        be.put(Kind::Snapshot, "s", b"x").unwrap();
        assert!(!dead.exists(), "a dead writer's leftover is removed");
        assert!(
            live.exists() && remote.exists(),
            "live and remote writers' files stay"
        );
        fs::write(&dead, b"again").unwrap();
        be.put(Kind::Snapshot, "t", b"y").unwrap();
        assert!(dead.exists(), "once per handle, not before every write");
    }
}
