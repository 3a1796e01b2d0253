//! Nothing here: see `tests/renamed_dependency.rs`.
