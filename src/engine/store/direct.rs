//! Writing big objects (packs) past the page cache.
//!
//! A backup writes hundreds of MiB of packs that nobody reads soon. Through the page cache
//! each of them costs fresh page-cache pages and a copy into them: on the benchmark machine
//! (a VM that hands freed memory back to its host) a buffered 700 MiB write after
//! `drop_caches` took 0.3–3.9 s of system CPU, with `O_DIRECT` 0.2 s, and it evicts the
//! user's cached files besides. So whole 4 KiB blocks of a big object go out with
//! `O_DIRECT` through a small aligned buffer, and the tail with an ordinary write.
//!
//! Only on local disk file systems (ext2/3/4, XFS, btrfs): over NFS or SMB every direct write
//! would wait for the server, and tmpfs has no disk to go past. Where the file system refuses
//! `O_DIRECT` or its alignment is stricter, the rest is written the ordinary way: the bytes
//! on disk are the same either way, and durability still comes from the caller's fsync.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, ErrorKind, Write};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::statfs::{fstatfs, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC};

/// Objects smaller than this are written the ordinary way (index files, trees, snapshots).
const DIRECT_MIN: usize = 1 << 20;
/// The alignment asked of buffer, offset and length: a page covers 512- and 4096-byte disks.
const ALIGN: usize = 4096;
/// How much goes to the disk per write(2).
const STEP: usize = 1 << 20;

thread_local! {
    /// The aligned staging buffer, allocated (and faulted in) once per thread rather than per
    /// write: a pack's writer thread uses one buffer for all of the pack's 1 MiB steps.
    static STAGING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Write all of `data` to `f` (fresh, at offset 0), big objects with `O_DIRECT` where the
/// file system allows it.
pub(super) fn write_all(f: &mut File, data: &[u8]) -> io::Result<()> {
    let whole = data.len() / ALIGN * ALIGN;
    let mut done = 0;
    if data.len() >= DIRECT_MIN && on_local_disk(f) && set_direct(f, true).is_ok() {
        let res = write_direct(f, &data[..whole]);
        // Ordinary writes from here on, whatever happened: an aligned prefix went out.
        set_direct(f, false)?;
        done = res?;
    }
    f.write_all(&data[done..])
}

fn on_local_disk(f: &File) -> bool {
    fstatfs(f).is_ok_and(|s| {
        [EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, BTRFS_SUPER_MAGIC].contains(&s.filesystem_type())
    })
}

fn set_direct(f: &File, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(f, FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_DIRECT
    } else {
        flags - OFlag::O_DIRECT
    };
    fcntl(f, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Write `data` (a multiple of [`ALIGN`] long) with `f` in `O_DIRECT` mode; returns how much
/// was written, less than all when the file system refused an aligned write (`EINVAL`), so
/// the caller goes on the ordinary way from there.
fn write_direct(f: &mut File, data: &[u8]) -> io::Result<usize> {
    STAGING.with_borrow_mut(|staging| {
        if staging.len() < STEP + ALIGN {
            staging.resize(STEP + ALIGN, 0);
        }
        let start = staging.as_ptr().align_offset(ALIGN);
        let Some(buf) = staging.get_mut(start..start + STEP) else {
            return Ok(0);
        };
        let mut done = 0;
        while done < data.len() {
            let n = (data.len() - done).min(STEP);
            buf[..n].copy_from_slice(&data[done..done + n]);
            let mut at = 0;
            while at < n {
                match f.write(&buf[at..n]) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    // A short write (a nearly full disk) leaves the offset unaligned: finish
                    // the ordinary way.
                    Ok(k) if k % ALIGN != 0 => return Ok(done + at + k),
                    Ok(k) => at += k,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => return Ok(done + at),
                    Err(e) => return Err(e),
                }
            }
            done += n;
        }
        Ok(done)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    fn round_trip(dir: &Path, n: usize) {
        let p = dir.join(format!("obj-{n}"));
        let data = pattern(n);
        let mut f = File::create(&p).unwrap();
        write_all(&mut f, &data).unwrap();
        // The descriptor went back to ordinary mode: O_DIRECT is not left set.
        let fl = OFlag::from_bits_truncate(fcntl(&f, FcntlArg::F_GETFL).unwrap());
        assert!(!fl.contains(OFlag::O_DIRECT));
        f.sync_all().unwrap();
        drop(f);
        assert!(
            std::fs::read(&p).unwrap() == data,
            "{n} bytes in {}",
            dir.display()
        );
    }

    const SIZES: [usize; 6] = [
        0,
        100,
        DIRECT_MIN - 1,
        DIRECT_MIN,
        3 * STEP + 123,
        5 * ALIGN * 64,
    ];

    #[test]
    fn objects_of_every_size_read_back_on_a_disk_file_system() {
        // Under the crate (on disk), not in /tmp, which may be tmpfs.
        let d = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let probe = File::create(d.path().join("probe")).unwrap();
        if !on_local_disk(&probe) {
            eprintln!("SKIPPING the O_DIRECT path: the checkout is not on ext4, XFS or btrfs");
        }
        for n in SIZES {
            round_trip(d.path(), n);
        }
    }

    #[test]
    fn objects_read_back_on_tmpfs() {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            eprintln!("SKIPPING objects_read_back_on_tmpfs: no /dev/shm here");
            return;
        }
        let d = tempfile::tempdir_in(shm).unwrap();
        for n in SIZES {
            round_trip(d.path(), n);
        }
    }

    #[test]
    fn a_file_that_refuses_o_direct_gets_ordinary_writes() {
        // A character device cannot be put in O_DIRECT mode.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        assert!(set_direct(&f, true).is_err());
        write_all(&mut f, &pattern(2 * DIRECT_MIN)).unwrap();
    }
}
