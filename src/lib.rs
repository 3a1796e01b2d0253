//! Workspace-level integration tests and examples for leakwatch; see `tests/` and `examples/`.

/// README.md's code blocks, compiled (and run, unless marked `no_run`) as this package's doc
/// tests: `cargo test -p leakwatch-suite --doc`. Blocks that are not Rust are marked `sh`,
/// `text`, `json` or `console`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
