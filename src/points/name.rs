//! Names of backup points (`daily.0`) and dated snapshot names (`2026-11-21-120000`).

use std::fmt;

use super::levels::valid_level_name;

/// The view's name for the newest snapshot of each source (`latest/web1`); no level may take it.
pub const LATEST: &str = "latest";
/// The view's folder of every snapshot by dated name (`snapshots/web1/DATE`); no level may take it.
pub const SNAPSHOTS: &str = "snapshots";

/// A backup point of some level, e.g. `hourly.0` (the newest hourly).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PointName {
    pub level: String,
    pub index: usize,
}

impl PointName {
    /// Parse `LEVEL.N`; the level name is not checked against a config here.
    pub fn parse(s: &str) -> Option<Self> {
        let (level, n) = s.rsplit_once('.')?;
        if !valid_level_name(level) || n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if n.len() > 1 && n.starts_with('0') {
            return None;
        }
        Some(PointName {
            level: level.to_string(),
            index: n.parse().ok()?,
        })
    }
}

impl fmt::Display for PointName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.level, self.index)
    }
}

/// The dated name of a time (seconds since the epoch, UTC): `YYYY-MM-DD-HHMMSS`, like bup.
pub fn dated_name(unix_secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs.max(0) as u64);
    // RFC 3339 "2026-11-21T12:00:00Z" → "2026-11-21-120000".
    let s = humantime::format_rfc3339_seconds(t).to_string();
    let (date, time) = s.split_once('T').unwrap_or((&s, ""));
    format!("{date}-{}", time.trim_end_matches('Z').replace(':', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_names() {
        let p = PointName::parse("daily.12").unwrap();
        assert_eq!((p.level.as_str(), p.index), ("daily", 12));
        assert_eq!(p.to_string(), "daily.12");
        for bad in [
            "daily", "daily.", ".0", "Daily.0", "daily.01", "latest.0", "daily.-1", "daily.x",
        ] {
            assert!(PointName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn dated() {
        assert_eq!(dated_name(0), "1970-01-01-000000");
        assert_eq!(dated_name(1_795_262_400), "2026-11-21-120000");
    }
}
