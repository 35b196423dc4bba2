//! Fuzz target: see `checks::link_table`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::link_table(data);
});
