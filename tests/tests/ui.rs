//! Compile errors of `#[cmdstream::receiver]`: every unsupported shape is
//! reported at the culprit's span with a message saying what to do.

#[test]
fn unsupported_shapes_fail_with_precise_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*/*.rs");
}
