//! What to do next, for errors whose fix is a command or a flag. The engine says what went
//! wrong; which command-line words fix it is the command line's business, so the advice is
//! added here, where every error reaches the user.

use yester::engine::Error;

/// The error as `yester: …` prints it (`{:#}`: each context, then the cause), with advice
/// when its root cause is an engine error that has some.
pub fn message(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    let Some(engine) = e.root_cause().downcast_ref::<Error>() else {
        return text;
    };
    with_hint(text, engine)
}

/// `text` (which ends with `engine`'s message) with the advice for `engine` added, worded as
/// the engine worded it before it stopped naming commands and flags.
fn with_hint(text: String, engine: &Error) -> String {
    let hint = match engine {
        Error::Locked(_) => "; try again later or pass --lock-wait",
        Error::NotARepository(_) => "; create one with `yester init`",
        Error::AlreadyExists(_) => "; refusing to initialise a repository there",
        Error::WouldOverwrite(_) => " (use --overwrite)",
        _ => return text,
    };
    // While the engine still words its messages with the hint, it is already there: do not
    // say it twice. This guard goes once the engine change lands.
    if text.contains(hint.trim_start_matches([';', ' '])) {
        return text;
    }
    match engine {
        // "…: not a yester repository (no config)" → "(no config; create one with `yester init`)"
        Error::NotARepository(_) if text.ends_with(')') => {
            format!("{}{hint})", &text[..text.len() - 1])
        }
        Error::NotARepository(_) => format!("{text} ({})", &hint[2..]),
        _ => format!("{text}{hint}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn shown(e: Error, context: Option<&str>) -> String {
        let mut e = anyhow::Error::from(e);
        if let Some(c) = context {
            e = e.context(c.to_string());
        }
        message(&e)
    }

    #[test]
    fn today_s_engine_wording_is_not_repeated() {
        let locked =
            Error::Locked("held by backup (pid 7); try again later or pass --lock-wait".into());
        assert_eq!(
            shown(locked, None),
            "repository is locked: held by backup (pid 7); try again later or pass --lock-wait"
        );
        let not_repo = Error::NotARepository(PathBuf::from("/srv/x"));
        assert_eq!(
            shown(not_repo, None),
            "/srv/x: not a yester repository (no config; create one with `yester init`)"
        );
        let exists = Error::WouldOverwrite(PathBuf::from("/t/a"));
        assert_eq!(
            shown(exists, None),
            "/t/a: already exists; refusing to overwrite (use --overwrite)"
        );
    }

    #[test]
    fn hints_come_back_when_the_engine_drops_them() {
        // What the engine's messages will look like without command-line words.
        let cases = [
            (
                Error::Locked("held by backup (pid 7)".into()),
                "repository is locked: held by backup (pid 7)",
                "repository is locked: held by backup (pid 7); try again later or pass --lock-wait",
            ),
            (
                Error::NotARepository(PathBuf::from("/srv/x")),
                "/srv/x: not a yester repository (no config)",
                "/srv/x: not a yester repository (no config; create one with `yester init`)",
            ),
            (
                Error::AlreadyExists(PathBuf::from("/srv/x")),
                "/srv/x: already exists and is not empty",
                "/srv/x: already exists and is not empty; refusing to initialise a repository there",
            ),
            (
                Error::WouldOverwrite(PathBuf::from("/t/a")),
                "/t/a: already exists; refusing to overwrite",
                "/t/a: already exists; refusing to overwrite (use --overwrite)",
            ),
        ];
        for (e, bare, want) in cases {
            assert_eq!(with_hint(bare.to_string(), &e), want);
        }
    }

    #[test]
    fn contexts_stay_in_front_and_other_errors_pass() {
        let locked =
            Error::Locked("held by prune (pid 9); try again later or pass --lock-wait".into());
        assert_eq!(
            shown(locked, Some("forgetting 1a2b3c4d")),
            "forgetting 1a2b3c4d: repository is locked: held by prune (pid 9); try again later or pass --lock-wait"
        );
        assert_eq!(
            shown(Error::NotFound("no snapshot x".into()), None),
            "no snapshot x"
        );
        assert_eq!(message(&anyhow::anyhow!("plain")), "plain");
    }
}
