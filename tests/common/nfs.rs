//! A `yester nfs serve` for the length of a test, and a raw ONC RPC client to talk to it.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::run::Yester;

/// `yester -r REPO nfs serve --listen 127.0.0.1:0 --handle-key KEY EXTRA...` (stderr after
/// the "listening" line goes to a log file); killed when dropped.
pub struct NfsServer {
    pub child: std::process::Child,
    pub port: u16,
    pub log: PathBuf,
}

impl NfsServer {
    pub fn start(repo: &Path, key: &Path, extra: &[&OsStr]) -> NfsServer {
        use std::io::{BufRead, Write};
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = key.with_extension(format!("log-{n}"));
        // Nothing from the test run's environment (no tracing or failpoints in the server):
        // the harness removes it.
        let mut cmd = Yester::at(repo);
        cmd.args(["nfs", "serve", "--listen", "127.0.0.1:0", "--handle-key"])
            .arg(key)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start yester nfs serve");
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        // Warnings (e.g. about a damaged point catalogue) may come before the "listening"
        // line; they go to the log.
        let mut before = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            if err.read_line(&mut line).unwrap_or(0) == 0 || line.contains("listening on ") {
                break;
            }
            before.push_str(&line);
        }
        let port = line
            .split("listening on ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?} (before it: {before:?})"));
        // Keep draining stderr into the log so the server never blocks on a full pipe.
        let mut out = fs::File::create(&log).unwrap();
        let _ = out.write_all(before.as_bytes());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut err, &mut out);
        });
        NfsServer { child, port, log }
    }

    /// An `nfs://` URL for libnfs tools, MOUNT and NFS on the server's one port.
    pub fn url(&self, path: &str) -> String {
        format!(
            "nfs://127.0.0.1{path}?version=3&nfsport={p}&mountport={p}",
            p = self.port
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NfsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The raw ONC RPC client of tests/nfs_server.rs and tests/access.rs: XDR pieces and a
/// connection.
pub mod xdr {
    pub fn put_u32(b: &mut Vec<u8>, v: u32) {
        b.extend_from_slice(&v.to_be_bytes());
    }

    pub fn put_opaque(b: &mut Vec<u8>, d: &[u8]) {
        put_u32(b, d.len() as u32);
        b.extend_from_slice(d);
        b.extend(std::iter::repeat_n(0, (4 - d.len() % 4) % 4));
    }

    pub fn get_u32(b: &[u8], pos: &mut usize) -> u32 {
        let v = u32::from_be_bytes(b[*pos..*pos + 4].try_into().unwrap());
        *pos += 4;
        v
    }

    pub fn get_opaque(b: &[u8], pos: &mut usize) -> Vec<u8> {
        let n = get_u32(b, pos) as usize;
        let v = b[*pos..*pos + n].to_vec();
        *pos += n + (4 - n % 4) % 4;
        v
    }

    /// A reply: the RPC accept status (or 100 + auth_stat when denied) and the results.
    pub struct Reply {
        pub stat: u32,
        pub body: Vec<u8>,
    }

    impl Reply {
        /// The NFS or MOUNT status (the first word of the results).
        pub fn status(&self) -> u32 {
            assert_eq!(
                self.stat, 0,
                "call not accepted (accept status {})",
                self.stat
            );
            u32::from_be_bytes(self.body[..4].try_into().unwrap())
        }
    }

    /// One TCP connection of a raw ONC RPC client.
    pub struct Conn {
        s: std::net::TcpStream,
        xid: u32,
    }

    impl Conn {
        /// Connect to 127.0.0.1:`port` from 127.0.0.`host`:`local_port` (0: the kernel's
        /// choice; ports below 1024 need root).
        pub fn connect(host: u8, local_port: u16, port: u16) -> Conn {
            use nix::sys::socket::{
                bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType,
                SockaddrIn,
            };
            use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
            let fd = socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::empty(),
                None,
            )
            .unwrap();
            if local_port != 0 {
                setsockopt(&fd, sockopt::ReuseAddr, &true).unwrap();
            }
            bind(
                fd.as_raw_fd(),
                &SockaddrIn::new(127, 0, 0, host, local_port),
            )
            .unwrap();
            connect(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).unwrap();
            // SAFETY: `fd` is a connected socket we own; the stream takes it over.
            let s = unsafe { std::net::TcpStream::from_raw_fd(fd.into_raw_fd()) };
            s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            Conn { s, xid: 1 }
        }

        /// One call with AUTH_SYS credentials `uid`:`gid`; a denied call gives stat
        /// 100 + its auth_stat.
        pub fn call(&mut self, prog: u32, proc_: u32, uid: u32, gid: u32, args: &[u8]) -> Reply {
            let mut cred = Vec::new();
            put_u32(&mut cred, 0);
            put_opaque(&mut cred, b"test");
            put_u32(&mut cred, uid);
            put_u32(&mut cred, gid);
            put_u32(&mut cred, 0);
            self.call_as(prog, 3, proc_, 1, &cred, args)
        }

        /// One call of version `vers` with credentials of `flavor` (body `cred`).
        pub fn call_as(
            &mut self,
            prog: u32,
            vers: u32,
            proc_: u32,
            flavor: u32,
            cred: &[u8],
            args: &[u8],
        ) -> Reply {
            use std::io::{Read, Write};
            self.xid += 1;
            let mut m = Vec::new();
            for v in [self.xid, 0, 2, prog, vers, proc_, flavor] {
                put_u32(&mut m, v);
            }
            put_opaque(&mut m, cred);
            put_u32(&mut m, 0);
            put_u32(&mut m, 0);
            m.extend_from_slice(args);
            let mut rec = (0x8000_0000u32 | m.len() as u32).to_be_bytes().to_vec();
            rec.extend_from_slice(&m);
            self.s.write_all(&rec).unwrap();
            let mut reply = Vec::new();
            loop {
                let mut h = [0u8; 4];
                self.s.read_exact(&mut h).unwrap();
                let w = u32::from_be_bytes(h);
                let mut frag = vec![0u8; (w & 0x7fff_ffff) as usize];
                self.s.read_exact(&mut frag).unwrap();
                reply.extend_from_slice(&frag);
                if w & 0x8000_0000 != 0 {
                    break;
                }
            }
            let mut pos = 0;
            assert_eq!(get_u32(&reply, &mut pos), self.xid);
            assert_eq!(get_u32(&reply, &mut pos), 1, "a reply");
            if get_u32(&reply, &mut pos) == 1 {
                let _rej = get_u32(&reply, &mut pos);
                let auth = get_u32(&reply, &mut pos);
                return Reply {
                    stat: 100 + auth,
                    body: Vec::new(),
                };
            }
            let _verf_flavor = get_u32(&reply, &mut pos);
            let _verf = get_opaque(&reply, &mut pos);
            let stat = get_u32(&reply, &mut pos);
            Reply {
                stat,
                body: reply[pos..].to_vec(),
            }
        }
    }
}
