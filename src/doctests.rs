//! The Rust snippets of README.md and docs/ run as doctests: each document
//! is the doc comment of an item that exists only under `cargo test --doc`.

/// README.md
#[doc = include_str!("../README.md")]
pub struct Readme;
