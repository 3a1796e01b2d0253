//! Compile-fail tests for `#[tracked]`: each unsupported shape or mistake must fail with a
//! message that says what to write instead. Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p leakwatch --test trybuild`, then read it.

#[test]
fn tracked_compile_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
