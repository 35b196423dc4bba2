//! Retention levels (`hourly` keeps 6, `daily` 7, …) and their rules: which names a level may
//! take, how many points it may keep, the defaults. The repository config stores the list
//! (`levels`, docs/FORMAT.md "config") without interpreting it; this module checks it when a
//! repository is created ([`set_levels`]) and whenever points reads it ([`levels_of`]).

use crate::engine::format::config::{RepoConfig, StoredLevel};
use crate::engine::store::repo::CONFIG_NAME;
use crate::engine::{Error, Kind, Repository, Result};

use super::name::{LATEST, SNAPSHOTS};

/// One retention level: its name and how many points it keeps (`hourly`, 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Level {
    pub name: String,
    pub keep: usize,
}

/// The most points one level may keep.
const MAX_KEEP: usize = 100_000;

/// The default levels: hourly 6, daily 7, weekly 4, monthly 6 (lowest first). A config without
/// `levels` has these.
pub fn default_levels() -> Vec<Level> {
    [("hourly", 6), ("daily", 7), ("weekly", 4), ("monthly", 6)]
        .into_iter()
        .map(|(name, keep)| Level {
            name: name.to_string(),
            keep,
        })
        .collect()
}

/// A level name: lowercase ASCII letters, digits, `_` and `-`, starting with a letter, and not
/// one of the view's own top-level names ([`LATEST`], [`SNAPSHOTS`]).
pub fn valid_level_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_lowercase())
        && b.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
        && s != LATEST
        && s != SNAPSHOTS
}

/// Check a list of levels: at least one, names valid and unique, keep at least 1.
pub fn validate_levels(levels: &[Level]) -> Result<()> {
    if levels.is_empty() {
        return Err(Error::Invalid("at least one level is needed".into()));
    }
    for (i, l) in levels.iter().enumerate() {
        if !valid_level_name(&l.name) {
            return Err(Error::Invalid(format!(
                "level name {:?}: use lowercase letters, digits, '-' and '_', starting with a letter (not {LATEST}/{SNAPSHOTS})",
                l.name
            )));
        }
        if l.keep == 0 || l.keep > MAX_KEEP {
            return Err(Error::Invalid(format!(
                "level {}: keep must be between 1 and {MAX_KEEP}",
                l.name
            )));
        }
        if levels[..i].iter().any(|o| o.name == l.name) {
            return Err(Error::Invalid(format!("level {} is listed twice", l.name)));
        }
    }
    Ok(())
}

/// Check `levels` and store them in a new repository's `config` (before `Repository::init`).
pub fn set_levels(config: &mut RepoConfig, levels: &[Level]) -> Result<()> {
    validate_levels(levels)?;
    config.levels = Some(
        levels
            .iter()
            .map(|l| StoredLevel {
                name: l.name.clone(),
                keep: l.keep,
            })
            .collect(),
    );
    Ok(())
}

/// The levels a config stores (the defaults if it has none), checked.
fn from_config(config: &RepoConfig) -> Result<Vec<Level>> {
    let Some(stored) = &config.levels else {
        return Ok(default_levels());
    };
    let levels: Vec<Level> = stored
        .iter()
        .map(|s| Level {
            name: s.name.clone(),
            keep: s.keep,
        })
        .collect();
    validate_levels(&levels)?;
    Ok(levels)
}

/// The repository's levels, lowest first. Levels that break the rules mean a damaged `config`
/// (yester never writes them), so the error is `Corrupt`, naming the config object.
pub fn levels_of(repo: &Repository) -> Result<Vec<Level>> {
    from_config(repo.config())
        .map_err(|e| Error::corrupt(repo.backend().describe(Kind::Config, CONFIG_NAME), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::format::config::ChunkerParams;

    fn level(name: &str, keep: usize) -> Level {
        Level {
            name: name.into(),
            keep,
        }
    }

    #[test]
    fn names() {
        for ok in ["hourly", "daily", "a", "x-1_y", "latest2", "snapshots-old"] {
            assert!(valid_level_name(ok), "{ok}");
        }
        for bad in [
            "", "Daily", "1day", "-x", "_x", "da ily", "dä", LATEST, SNAPSHOTS,
        ] {
            assert!(!valid_level_name(bad), "{bad}");
        }
    }

    #[test]
    fn rules_and_their_messages() {
        let msg = |l: &[Level]| validate_levels(l).unwrap_err().to_string();
        assert!(validate_levels(&default_levels()).is_ok());
        assert!(msg(&[]).contains("at least one level is needed"));
        assert!(msg(&[level("latest", 1)]).contains(
            "level name \"latest\": use lowercase letters, digits, '-' and '_', starting with a \
             letter (not latest/snapshots)"
        ));
        assert!(
            msg(&[level("hourly", 0)]).contains("level hourly: keep must be between 1 and 100000")
        );
        assert!(validate_levels(&[level("hourly", MAX_KEEP)]).is_ok());
        assert!(msg(&[level("hourly", MAX_KEEP + 1)]).contains("keep must be between"));
        assert!(
            msg(&[level("hourly", 1), level("hourly", 2)]).contains("level hourly is listed twice")
        );
    }

    #[test]
    fn config_round_trip_and_defaults() {
        let mut c = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
        assert_eq!(from_config(&c).unwrap(), default_levels());
        let mine = [level("often", 2), level("seldom", 3)];
        set_levels(&mut c, &mine).unwrap();
        let back = RepoConfig::decode(&c.encode().unwrap(), "config").unwrap();
        assert_eq!(from_config(&back).unwrap(), mine);
        assert!(set_levels(&mut c, &[level("snapshots", 1)]).is_err());
        assert_eq!(
            from_config(&c).unwrap(),
            mine,
            "a refused list is not stored"
        );
    }

    #[test]
    fn the_config_bytes_are_what_they_were() {
        // fuzz/repo/config was written before levels moved here (and before `check`, which
        // `encode` appends to these bytes).
        let mut c = RepoConfig::new(ChunkerParams::from_avg(4096).unwrap(), 3).unwrap();
        c.blob_key = hex::encode(*b"yester-fuzz-fixture-blob-key-32b");
        c.id = "00112233445566778899aabbccddeeff".into();
        c.created = "2026-11-21T12:00:00Z".into();
        c.pack_size = 64 * 1024;
        set_levels(&mut c, &default_levels()).unwrap();
        let fixture: &[u8] = include_bytes!("../../fuzz/repo/config");
        assert_eq!(
            String::from_utf8(serde_json::to_vec_pretty(&c).unwrap()).unwrap(),
            String::from_utf8(fixture.to_vec()).unwrap()
        );
    }

    #[test]
    fn damaged_levels_are_refused_when_read_not_when_opened() {
        use crate::engine::store::MemoryBackend;
        use std::sync::Arc;
        let mut c = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
        c.levels = Some(vec![StoredLevel {
            name: "Daily".into(),
            keep: 1,
        }]);
        let repo = Repository::init(Arc::new(MemoryBackend::new()), c).unwrap();
        let e = levels_of(&repo).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("level name \"Daily\""), "{e}");
    }
}
