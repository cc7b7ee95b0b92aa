//! The `saps` binary (in progress).
fn main() {}
