//! Workspace-level integration tests and examples for leakwatch; see `tests/` and `examples/`.
