//! The exports file: which clients may mount which paths of the view, and how their
//! credentials are treated. The shape follows `/etc/exports` (docs/NFS.md):
//!
//! ```text
//! # path pattern     clients with options
//! /*/web1            192.0.2.10(no_root_squash)
//! /daily.0           10.0.0.0/24(insecure,all_squash,anonuid=1000,anongid=1000)  127.0.0.1
//! ```
//!
//! A pattern is a glob whose `*` matches one path component; it exports the paths it matches
//! and everything below them. The first export line that matches a path and lists the client
//! decides. Exports are always read-only.

use std::net::IpAddr;

use globset::{GlobBuilder, GlobMatcher};

use super::handle::ExportTag;
use super::rpc::Cred;

/// How one client's requests are treated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// uid 0 becomes the anonymous user (default).
    pub root_squash: bool,
    /// Everyone becomes the anonymous user.
    pub all_squash: bool,
    /// Requests must come from a source port below 1024 (default).
    pub secure: bool,
    pub anonuid: u32,
    pub anongid: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            root_squash: true,
            all_squash: false,
            secure: true,
            anonuid: 65534,
            anongid: 65534,
        }
    }
}

/// The credentials a request is served with, after squashing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

impl Options {
    /// Map the caller's credentials the way knfsd does.
    pub fn creds(&self, cred: &Cred) -> Creds {
        let anon = Creds {
            uid: self.anonuid,
            gid: self.anongid,
            gids: Vec::new(),
        };
        match cred {
            Cred::None => anon,
            _ if self.all_squash => anon,
            Cred::Sys { uid, gid, gids } => {
                let squash = |id: u32, to: u32| if self.root_squash && id == 0 { to } else { id };
                Creds {
                    uid: squash(*uid, self.anonuid),
                    gid: squash(*gid, self.anongid),
                    gids: gids.iter().map(|g| squash(*g, self.anongid)).collect(),
                }
            }
        }
    }
}

/// Which client addresses a rule covers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Net {
    Any,
    Prefix(IpAddr, u8),
}

impl Net {
    fn contains(&self, a: IpAddr) -> bool {
        match (self, a.to_canonical()) {
            (Net::Any, _) => true,
            (Net::Prefix(IpAddr::V4(n), len), IpAddr::V4(a)) => {
                let mask = if *len == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(*len))
                };
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (Net::Prefix(IpAddr::V6(n), len), IpAddr::V6(a)) => {
                let mask = if *len == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(*len))
                };
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// One line of the exports file.
#[derive(Clone, Debug)]
pub struct Export {
    pub pattern: String,
    matcher: GlobMatcher,
    clients: Vec<(Net, Options)>,
    /// Names the export inside file handles.
    pub tag: ExportTag,
}

impl Export {
    /// The options for a client, if it is listed.
    pub fn options_for(&self, addr: IpAddr) -> Option<&Options> {
        self.clients
            .iter()
            .find(|(n, _)| n.contains(addr))
            .map(|(_, o)| o)
    }

    /// Whether `path` (normalised, `/`-led) is this export or below it.
    pub fn covers(&self, path: &str) -> bool {
        if self.matcher.is_match(path) {
            return true;
        }
        let mut p = path;
        while let Some(i) = p.rfind('/') {
            p = &path[..i];
            if self.matcher.is_match(if p.is_empty() { "/" } else { p }) {
                return true;
            }
            if p.is_empty() {
                break;
            }
        }
        false
    }
}

/// All export lines.
#[derive(Clone, Debug)]
pub struct Exports {
    pub list: Vec<Export>,
}

fn parse_options(text: &str, line: usize) -> Result<Options, String> {
    let mut o = Options::default();
    for opt in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let num = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("line {line}: {opt}: not a number"))
        };
        match opt {
            "ro" | "sync" | "async" | "no_subtree_check" | "subtree_check" | "wdelay"
            | "no_wdelay" => {}
            "rw" => {
                return Err(format!(
                    "line {line}: rw: yester exports are always read-only"
                ))
            }
            "root_squash" => o.root_squash = true,
            "no_root_squash" => o.root_squash = false,
            "all_squash" => o.all_squash = true,
            "no_all_squash" => o.all_squash = false,
            "secure" => o.secure = true,
            "insecure" => o.secure = false,
            _ if opt.starts_with("anonuid=") => o.anonuid = num(&opt[8..])?,
            _ if opt.starts_with("anongid=") => o.anongid = num(&opt[8..])?,
            _ => return Err(format!("line {line}: unknown option {opt:?}")),
        }
    }
    Ok(o)
}

fn parse_client(spec: &str, line: usize) -> Result<(Net, Options), String> {
    let (who, opts) = match spec.find('(') {
        Some(i) if spec.ends_with(')') => (&spec[..i], &spec[i + 1..spec.len() - 1]),
        Some(_) => return Err(format!("line {line}: {spec:?}: unbalanced parentheses")),
        None => (spec, ""),
    };
    let net = if who == "*" {
        Net::Any
    } else {
        let (addr, len) = match who.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (who, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| {
            format!("line {line}: {addr:?} is not an IP address (host names are not supported)")
        })?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("line {line}: {who:?}: bad prefix length"))?,
            None => max,
        };
        Net::Prefix(ip.to_canonical(), len)
    };
    Ok((net, parse_options(opts, line)?))
}

/// The first bytes of the pattern's hash (version 1 handles carried 8 of them, so their first 4
/// are this tag too).
fn tag_of(pattern: &str) -> ExportTag {
    let mut t = [0u8; 4];
    t.copy_from_slice(&blake3::hash(pattern.as_bytes()).as_bytes()[..4]);
    t
}

impl Exports {
    /// Parse an exports file; errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut list = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.split('#').next().unwrap_or("").trim();
            if l.is_empty() {
                continue;
            }
            let mut parts = l.split_whitespace();
            let pattern = parts.next().unwrap_or("");
            if !pattern.starts_with('/') {
                return Err(format!(
                    "line {line}: the path {pattern:?} must start with '/'"
                ));
            }
            let norm = normalise(pattern);
            let matcher = GlobBuilder::new(&norm)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("line {line}: {e}"))?
                .compile_matcher();
            let clients = parts
                .map(|c| parse_client(c, line))
                .collect::<Result<Vec<_>, _>>()?;
            if clients.is_empty() {
                return Err(format!("line {line}: no clients listed for {pattern}"));
            }
            let tag = tag_of(&norm);
            // Two patterns with one tag would let each other's handles through; about one
            // pair in four billion, but refused rather than served.
            if let Some(other) = list
                .iter()
                .find(|e: &&Export| e.tag == tag && e.pattern != norm)
            {
                return Err(format!(
                    "line {line}: {norm} has the same file handle tag as {}; \
                     write one of the two patterns differently",
                    other.pattern
                ));
            }
            list.push(Export {
                tag,
                pattern: norm,
                matcher,
                clients,
            });
        }
        Ok(Exports { list })
    }

    /// Without an exports file: everything, to this host only.
    pub fn loopback_only() -> Self {
        // Parsing a constant cannot fail; fall back to no exports rather than panic.
        Exports::parse("/ 127.0.0.0/8 ::1").unwrap_or(Exports { list: Vec::new() })
    }

    /// The export that lets `addr` mount `path`, with the client's options.
    pub fn find(&self, path: &str, addr: IpAddr) -> Option<(&Export, &Options)> {
        self.list
            .iter()
            .filter(|e| e.covers(path))
            .find_map(|e| e.options_for(addr).map(|o| (e, o)))
    }

    /// The export a handle's tag names.
    pub fn by_tag(&self, tag: &ExportTag) -> Option<&Export> {
        self.list.iter().find(|e| &e.tag == tag)
    }
}

/// `/a//b/` → `/a/b`; `` → `/`.
pub fn normalise(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_patterns_with_one_handle_tag_are_refused() {
        // A birthday search over 4-byte tags finds a colliding pair within ~100k patterns.
        let mut seen = std::collections::HashMap::new();
        let (a, b) = (0u32..1_000_000)
            .find_map(|i| {
                let p = format!("/daily.0/h{i}");
                seen.insert(tag_of(&p), p.clone()).map(|q| (q, p))
            })
            .unwrap();
        let err = Exports::parse(&format!("{a} 10.0.0.1\n{b} 10.0.0.2\n")).unwrap_err();
        assert!(err.starts_with("line 2:") && err.contains(&a), "{err}");
        // The same pattern twice has one tag and is fine.
        assert!(Exports::parse(&format!("{a} 10.0.0.1\n{a} 10.0.0.2\n")).is_ok());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn patterns_clients_and_options() {
        let e = Exports::parse(
            "# comment\n/*/web1  192.0.2.10(no_root_squash) 10.0.0.0/24(insecure,all_squash,anonuid=1000)\n/latest 127.0.0.1\n",
        )
        .unwrap();
        let (ex, o) = e.find("/daily.0/web1", ip("192.0.2.10")).unwrap();
        assert_eq!(ex.pattern, "/*/web1");
        assert!(!o.root_squash && o.secure);
        assert!(e.find("/daily.0/web1/etc/hosts", ip("10.0.0.7")).is_some());
        assert!(e.find("/daily.0/db1", ip("192.0.2.10")).is_none());
        assert!(
            e.find("/daily.0", ip("192.0.2.10")).is_none(),
            "not above the export"
        );
        assert!(e.find("/daily.0/web1", ip("192.0.2.11")).is_none());
        assert!(
            e.find("/latest/x", ip("::ffff:127.0.0.1")).is_some(),
            "v4-mapped addresses"
        );
        let o = e.find("/daily.0/web1", ip("10.0.0.7")).unwrap().1;
        assert_eq!(
            o.creds(&Cred::Sys {
                uid: 5,
                gid: 5,
                gids: vec![]
            })
            .uid,
            1000
        );
        let d = Options::default();
        assert_eq!(
            d.creds(&Cred::Sys {
                uid: 0,
                gid: 0,
                gids: vec![0, 4]
            }),
            Creds {
                uid: 65534,
                gid: 65534,
                gids: vec![65534, 4]
            }
        );
        assert_eq!(
            d.creds(&Cred::Sys {
                uid: 1000,
                gid: 100,
                gids: vec![]
            })
            .uid,
            1000
        );
        assert_eq!(d.creds(&Cred::None).uid, 65534);
    }

    #[test]
    fn errors_name_the_line() {
        for (text, want) in [
            ("/a 1.2.3.4(rw)", "line 1"),
            ("\n/a host.example", "line 2"),
            ("a 1.2.3.4", "must start"),
            ("/a", "no clients"),
            ("/a 1.2.3.4/40", "prefix"),
            ("/a 1.2.3.4(bogus)", "unknown option"),
        ] {
            let err = Exports::parse(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn loopback_default() {
        let e = Exports::loopback_only();
        assert!(e.find("/anything", ip("127.0.0.1")).is_some());
        assert!(e.find("/", ip("::1")).is_some());
        assert!(e.find("/", ip("192.0.2.1")).is_none());
    }
}
