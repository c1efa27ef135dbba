//! Compile-time shapes: miswired typed layers fail `cargo build` with a message that names
//! the disagreeing sizes (trybuild).

#[test]
fn shape_mismatches_fail_to_compile_with_readable_messages() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui_typed/*.rs");
}
