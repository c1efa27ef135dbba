//! Macro misuse fails to compile with an error at the user's span (trybuild); the macro
//! options that must compile do (`artifex-core/tests/ui_pass`).

#[test]
fn macro_errors_point_at_the_user_span() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    cases.pass("tests/ui_pass/*.rs");
}
