//! Plain-text formatting for user output.

use yester::engine::format::tree::{Entry, NodeKind};

/// Bytes as a short human size (binary units).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `ls -l` style mode string, e.g. `-rw-r--r--`.
pub fn mode_string(kind: NodeKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind.letter());
    let bit = |m: u32, c: char| if mode & m != 0 { c } else { '-' };
    let special = |x: bool, set: bool, lower: char, upper: char| match (set, x) {
        (true, true) => lower,
        (true, false) => upper,
        (false, true) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(mode & 0o100 != 0, mode & 0o4000 != 0, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(mode & 0o010 != 0, mode & 0o2000 != 0, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(mode & 0o001 != 0, mode & 0o1000 != 0, 't', 'T'));
    s
}

/// A UTC time as `YYYY-MM-DD HH:MM:SS`.
pub fn time(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.trim_end_matches('Z').replacen('T', " ", 1)
}

/// Now, as Unix seconds (0 if the clock is before 1970), for ages.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// "3h 12m" style age.
pub fn age(secs: i64) -> String {
    let s = secs.max(0) as u64;
    let short = humantime::format_duration(std::time::Duration::from_secs(s)).to_string();
    // Keep the two largest units: "1day 2h 3m 4s" → "1day 2h".
    short.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

/// One `ls -l` line prefix (without the path).
pub fn long_prefix(e: &Entry) -> String {
    let size = match e.kind {
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            format!(
                "{},{}",
                nix::sys::stat::major(e.rdev),
                nix::sys::stat::minor(e.rdev)
            )
        }
        _ => e.size.to_string(),
    };
    format!(
        "{} {:>3} {:>5} {:>5} {:>12} {} ",
        mode_string(e.kind, e.mode),
        e.nlink,
        e.uid,
        e.gid,
        size,
        time(e.mtime.secs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(mode_string(NodeKind::File, 0o644), "-rw-r--r--");
        assert_eq!(mode_string(NodeKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(NodeKind::File, 0o4755), "-rwsr-xr-x");
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes(10), "10 B");
        assert_eq!(bytes(1536), "1.5 KiB");
    }
}
