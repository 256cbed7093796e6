//! Procedural macros for `cmdstream`. Use them through the `cmdstream` crate.
