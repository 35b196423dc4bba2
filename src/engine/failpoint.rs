//! Crash points for tests: with `YESTER_FAILPOINT=<name>` in the environment, the process
//! aborts at that point, as if killed there. The crash tests use them to hit the exact
//! moments between durable writes that random kills only sometimes reach.

/// Abort the process here if `YESTER_FAILPOINT` names this point.
pub fn failpoint(name: &str) {
    if std::env::var_os("YESTER_FAILPOINT").is_some_and(|v| v == name) {
        eprintln!("yester: failpoint {name}: aborting");
        std::process::abort();
    }
}
