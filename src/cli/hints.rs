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

/// `text` (which ends with `engine`'s message) with the advice for `engine` added.
fn with_hint(text: String, engine: &Error) -> String {
    let hint = match engine {
        Error::Locked(_) => "; try again later or pass --lock-wait",
        Error::NotARepository(_) => "; create one with `yester init`",
        Error::WouldOverwrite(_) => " (use --overwrite)",
        Error::Damaged { index: true, .. } => " (run `yester check --repair-index`)",
        Error::Damaged { index: false, .. } => " (run `yester check`)",
        _ => return text,
    };
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
    fn engine_errors_get_the_command_line_advice() {
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
                Error::Damaged {
                    what: "pack 1a2b is indexed but missing".into(),
                    index: false,
                },
                "pack 1a2b is indexed but missing; refusing to continue on a damaged repository",
                "pack 1a2b is indexed but missing; refusing to continue on a damaged repository (run `yester check`)",
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
        let locked = Error::Locked("held by prune (pid 9)".into());
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
