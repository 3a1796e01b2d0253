//! README's "Live dashboard" mount code is the crate docs' mounting example, which compiles
//! and runs as a doc test: the README copy cannot rot unnoticed.

/// The first ```rust block after `marker` in `text`, lines as written.
fn rust_block_after(text: &str, marker: &str) -> Vec<String> {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not found"));
    text[start..]
        .lines()
        .skip_while(|l| l.trim() != "```rust" && l.trim() != "```")
        .skip(1)
        .take_while(|l| l.trim() != "```")
        .map(str::to_owned)
        .collect()
}

#[test]
fn readme_mount_code_is_the_compiled_doc_example() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("the workspace README");
    let docs: String = include_str!("../src/lib.rs")
        .lines()
        .filter_map(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    let in_readme = rust_block_after(&readme, "## Live dashboard");
    let in_docs = rust_block_after(&docs, "# Mounting");
    assert!(
        in_readme.len() > 5,
        "README has the mount code: {in_readme:?}"
    );
    assert_eq!(
        in_readme, in_docs,
        "README's mount code differs from the crate docs' example"
    );
}
