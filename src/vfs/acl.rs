//! Who may read what: a file's mode and, when the backup holds one, its POSIX access ACL
//! (the `system.posix_acl_access` extended attribute), checked the way the kernel checks them
//! (acl(5), "ACCESS CHECK ALGORITHM").
//!
//! The NFS server checks every request with [`permitted`]. A FUSE mount leaves the check to
//! the kernel, which reads the ACL through getxattr; a mount that serves no extended
//! attributes shows [`Acl::narrowed_mode`] instead, so that the kernel's mode-only check never
//! grants more than the ACL did.

use super::Attr;
use crate::engine::format::tree::NodeKind;

/// The name of the extended attribute that holds a file's access ACL.
pub const ACCESS_ACL: &[u8] = b"system.posix_acl_access";

/// The version word of Linux's xattr encoding of an ACL.
const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;

/// A POSIX access ACL: the owner's, owning group's and others' permissions, the named users
/// and groups, and the mask that limits all but the owner and others.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    user_obj: u32,
    group_obj: u32,
    other: u32,
    mask: Option<u32>,
    users: Vec<(u32, u32)>,
    groups: Vec<(u32, u32)>,
}

/// The caller of a request: uid, primary gid and supplementary groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller<'a> {
    pub uid: u32,
    pub gid: u32,
    pub gids: &'a [u32],
}

impl Caller<'_> {
    fn in_group(&self, g: u32) -> bool {
        self.gid == g || self.gids.contains(&g)
    }
}

impl Acl {
    /// Decode the xattr value (a 4-byte version, then 8-byte entries: tag, permissions, id;
    /// little-endian). `None` if it is not a well-formed ACL: then the mode alone decides.
    pub fn parse(b: &[u8]) -> Option<Acl> {
        let (head, body) = b.split_at_checked(4)?;
        if u32::from_le_bytes(head.try_into().ok()?) != VERSION || body.len() % 8 != 0 {
            return None;
        }
        let (mut user_obj, mut group_obj, mut other) = (None, None, None);
        let mut acl = Acl {
            user_obj: 0,
            group_obj: 0,
            other: 0,
            mask: None,
            users: Vec::new(),
            groups: Vec::new(),
        };
        for e in body.chunks_exact(8) {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u32::from(u16::from_le_bytes([e[2], e[3]]) & 7);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let slot = match tag {
                USER_OBJ => &mut user_obj,
                GROUP_OBJ => &mut group_obj,
                OTHER => &mut other,
                MASK => &mut acl.mask,
                USER => {
                    acl.users.push((id, perm));
                    continue;
                }
                GROUP => {
                    acl.groups.push((id, perm));
                    continue;
                }
                _ => return None,
            };
            if slot.replace(perm).is_some() {
                return None;
            }
        }
        acl.user_obj = user_obj?;
        acl.group_obj = group_obj?;
        acl.other = other?;
        // Named entries need a mask (acl(5)); without one the ACL is malformed.
        if acl.mask.is_none() && !(acl.users.is_empty() && acl.groups.is_empty()) {
            return None;
        }
        Some(acl)
    }

    /// The ACL in an entry's extended attributes, if it has a well-formed one.
    pub fn of(xattrs: &[(Vec<u8>, Vec<u8>)]) -> Option<Acl> {
        xattrs
            .iter()
            .find(|(k, _)| k == ACCESS_ACL)
            .and_then(|(_, v)| Acl::parse(v))
    }

    /// Whether the ACL lets `c` do all of `want` on a file owned by `uid`:`gid`.
    fn allows(&self, uid: u32, gid: u32, c: &Caller, want: u32) -> bool {
        let has = |p: u32| p & want == want;
        let mask = self.mask.unwrap_or(7);
        if c.uid == uid {
            return has(self.user_obj);
        }
        if let Some((_, p)) = self.users.iter().find(|(u, _)| *u == c.uid) {
            return has(p & mask);
        }
        // Of the group entries that match, one must hold all of `want` (not their union).
        let groups = std::iter::once((gid, self.group_obj)).chain(self.groups.iter().copied());
        let mut matched = false;
        for (g, p) in groups {
            if c.in_group(g) {
                matched = true;
                if has(p & mask) {
                    return true;
                }
            }
        }
        !matched && has(self.other)
    }

    /// Permission bits for a checker that knows only the mode: the owner's are the ACL's, and
    /// the group's and others' are narrowed to what every named user and group, the owning
    /// group and the mask allow. A named user or group may then be refused what the ACL gives
    /// them, but nobody is granted more than it does.
    pub fn narrowed_mode(&self, perm: u32) -> u32 {
        let mask = self.mask.unwrap_or(7);
        let named = self
            .users
            .iter()
            .chain(&self.groups)
            .fold(7, |acc, (_, p)| acc & p & mask);
        let group = self.group_obj & mask & named;
        let other = self.other & named;
        (perm & !0o777) | (self.user_obj << 6) | (group << 3) | other
    }
}

/// Whether `c` may do `want` (4 read, 2 write, 1 execute; several at once) on a node with
/// attributes `a` and access ACL `acl`. Root may read and search everything and execute what
/// anyone may execute, as with the kernel's capabilities.
pub fn permitted(a: &Attr, acl: Option<&Acl>, c: &Caller, want: u32) -> bool {
    if c.uid == 0 {
        return want & 1 == 0 || a.kind == NodeKind::Dir || a.perm & 0o111 != 0;
    }
    let bits = match acl {
        Some(acl) => return acl.allows(a.uid, a.gid, c, want),
        None if a.uid == c.uid => a.perm >> 6,
        None if c.in_group(a.gid) => a.perm >> 3,
        None => a.perm,
    } & 7;
    bits & want == want
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::format::tree::Timestamp;

    fn encode(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut b = VERSION.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            b.extend_from_slice(&tag.to_le_bytes());
            b.extend_from_slice(&perm.to_le_bytes());
            b.extend_from_slice(&id.to_le_bytes());
        }
        b
    }

    const UNDEF: u32 = u32::MAX;

    /// user::rw-, user:1001:r--, user:1002:---, group::r--, group:50:rw-, mask::r--,
    /// other::---; owner 1000:100.
    fn sample() -> Acl {
        Acl::parse(&encode(&[
            (USER_OBJ, 6, UNDEF),
            (USER, 4, 1001),
            (USER, 0, 1002),
            (GROUP_OBJ, 4, UNDEF),
            (GROUP, 6, 50),
            (MASK, 4, UNDEF),
            (OTHER, 0, UNDEF),
        ]))
        .unwrap()
    }

    fn attr(perm: u32) -> Attr {
        Attr {
            ino: 5,
            kind: NodeKind::File,
            perm,
            nlink: 1,
            uid: 1000,
            gid: 100,
            size: 0,
            blocks: 0,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            rdev: 0,
            acl: None,
        }
    }

    #[test]
    fn the_access_check_algorithm() {
        let acl = sample();
        // On disk the mode's group bits are the mask: r--.
        let a = attr(0o640);
        let may = |uid, gid, gids: &[u32], want| {
            permitted(&a, Some(&acl), &Caller { uid, gid, gids }, want)
        };
        assert!(may(1000, 1, &[], 6), "owner: user_obj");
        assert!(may(1001, 1, &[], 4), "named user");
        assert!(!may(1001, 1, &[], 2), "named user, no write");
        assert!(
            !may(1002, 100, &[], 4),
            "named user with ---, though in the owning group"
        );
        assert!(may(1003, 100, &[], 4), "owning group");
        assert!(may(1004, 1, &[50], 4), "named group");
        assert!(
            !may(1004, 1, &[50], 2),
            "named group rw-, but the mask is r--"
        );
        assert!(!may(1005, 1, &[], 4), "other ---");
        assert!(may(0, 0, &[], 4), "root");
        // Matching group entries are not added up: r from one and w from another is not rw.
        let split = Acl::parse(&encode(&[
            (USER_OBJ, 6, UNDEF),
            (GROUP_OBJ, 4, UNDEF),
            (GROUP, 2, 60),
            (MASK, 6, UNDEF),
            (OTHER, 0, UNDEF),
        ]))
        .unwrap();
        let c = Caller {
            uid: 1009,
            gid: 100,
            gids: &[60],
        };
        assert!(permitted(&a, Some(&split), &c, 4) && permitted(&a, Some(&split), &c, 2));
        assert!(!permitted(&a, Some(&split), &c, 6));
        // Without the ACL the mode decides, as before.
        assert!(!permitted(
            &a,
            None,
            &Caller {
                uid: 1001,
                gid: 1,
                gids: &[]
            },
            4
        ));
    }

    #[test]
    fn the_narrowed_mode_never_grants_more_than_the_acl() {
        let acl = sample();
        let narrowed = acl.narrowed_mode(0o100640);
        assert_eq!(
            narrowed, 0o100600,
            "user:1002 has ---, so group and other get nothing"
        );
        let n = attr(narrowed & 0o7777);
        for uid in [0, 1000, 1001, 1002, 1003, 1004, 1005] {
            for (gid, gids) in [(1, &[][..]), (100, &[][..]), (1, &[50][..])] {
                let c = Caller { uid, gid, gids };
                for want in [1, 2, 4, 6] {
                    if permitted(&n, None, &c, want) {
                        assert!(
                            permitted(&attr(0o640), Some(&acl), &c, want),
                            "{c:?} {want}"
                        );
                    }
                }
            }
        }
        // A minimal ACL (no named entries, no mask) is just the mode.
        let minimal = Acl::parse(&encode(&[
            (USER_OBJ, 7, UNDEF),
            (GROUP_OBJ, 5, UNDEF),
            (OTHER, 1, UNDEF),
        ]))
        .unwrap();
        assert_eq!(minimal.narrowed_mode(0o751), 0o751);
    }

    proptest::proptest! {
        /// Any bytes: parsing never panics, and whatever parses, the narrowed mode never
        /// lets a caller do what the ACL refuses.
        #[test]
        fn narrowed_modes_are_safe_for_any_acl(
            base in (0u16..8, 0u16..8, 0u16..8, proptest::option::of(0u16..8)),
            named in proptest::collection::vec((proptest::bool::ANY, 0u16..8, 0u32..4), 0..5),
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
        ) {
            let _ = Acl::parse(&noise);
            let (u, g, o, m) = base;
            let mut entries = vec![(USER_OBJ, u, UNDEF), (GROUP_OBJ, g, UNDEF), (OTHER, o, UNDEF)];
            let mut ids = std::collections::HashSet::new();
            for &(user, p, id) in &named {
                if ids.insert((user, id)) {
                    entries.push((if user { USER } else { GROUP }, p, 1000 + id));
                }
            }
            if let Some(m) = m.or(if named.is_empty() { None } else { Some(7) }) {
                entries.push((MASK, m, UNDEF));
            }
            let b = encode(&entries);
            let acl = Acl::parse(&b);
            proptest::prop_assert!(acl.is_some(), "{:?}", entries);
            if let Some(acl) = acl {
                let mut a = attr(0o640);
                a.uid = 1000;
                a.gid = 1000;
                let n = attr(acl.narrowed_mode(0o640) & 0o7777);
                let n = Attr { uid: 1000, gid: 1000, ..n };
                for uid in 1000..1005 {
                    for gid in 1000..1005 {
                        for extra in 1000..1005 {
                            let gids = [extra];
                            let c = Caller { uid, gid, gids: &gids };
                            for want in 1..8 {
                                if permitted(&n, None, &c, want) {
                                    proptest::prop_assert!(
                                        permitted(&a, Some(&acl), &c, want),
                                        "{:?} {:?} {}", acl, c, want
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn malformed_acls_are_not_acls() {
        let good = encode(&[
            (USER_OBJ, 6, UNDEF),
            (GROUP_OBJ, 4, UNDEF),
            (OTHER, 0, UNDEF),
        ]);
        assert!(Acl::parse(&good).is_some());
        assert!(Acl::parse(&good[..good.len() - 1]).is_none(), "truncated");
        assert!(Acl::parse(&[]).is_none());
        let mut v1 = good.clone();
        v1[0] = 1;
        assert!(Acl::parse(&v1).is_none(), "version");
        assert!(Acl::parse(&encode(&[(USER_OBJ, 6, UNDEF), (OTHER, 0, UNDEF)])).is_none());
        assert!(
            Acl::parse(&encode(&[
                (USER_OBJ, 6, UNDEF),
                (USER, 4, 7),
                (GROUP_OBJ, 4, UNDEF),
                (OTHER, 0, UNDEF)
            ]))
            .is_none(),
            "named entry without a mask"
        );
        assert!(
            Acl::parse(&encode(&[(0x40, 6, UNDEF)])).is_none(),
            "unknown tag"
        );
        for n in 0..good.len() {
            let _ = Acl::parse(&good[..n]);
        }
    }
}
