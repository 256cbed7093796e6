//! Nothing here: the test is in `tests/hygiene.rs`.
