//! Crash points for tests: with `YESTER_FAILPOINT=<name>` in the environment, the process
//! aborts at that point, as if killed there; with `YESTER_FAILPOINT=<name>:pause` it sleeps
//! there for three seconds, so a test can run another command against that moment. The crash
//! tests use them to hit the exact moments between durable writes that random kills only
//! sometimes reach.

/// Abort (or pause) the process here if `YESTER_FAILPOINT` names this point.
pub fn failpoint(name: &str) {
    let Some(v) = std::env::var_os("YESTER_FAILPOINT") else {
        return;
    };
    let v = v.to_string_lossy();
    if v == name {
        eprintln!("yester: failpoint {name}: aborting");
        std::process::abort();
    }
    if v.strip_suffix(":pause") == Some(name) {
        eprintln!("yester: failpoint {name}: pausing");
        std::thread::sleep(std::time::Duration::from_secs(3));
    }
}
