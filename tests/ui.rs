//! Compile-time checks: every mistake listed in DESIGN.md fails to compile with an error on the
//! offending token (`tests/ui/fail/*.rs` with their `.stderr`), and a full-featured endpoint
//! compiles (`tests/ui/pass`). Regenerate the expected output with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
