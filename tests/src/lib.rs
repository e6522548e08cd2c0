//! End-to-end tests live in `tests/tests/`: they start the real `doubletime`
//! binary. What they share: where the workspace, the binary and the built
//! plugins are, and reading the binary's log.

use std::path::PathBuf;

/// The repository root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `doubletime` binary the test command built.
pub fn binary() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let bin = dir.join("debug/doubletime");
    assert!(
        bin.is_file(),
        "{} missing: run `cargo build -p doubletime` (scripts/test does)",
        bin.display()
    );
    bin
}

/// The folder `scripts/build-plugins` wrote.
pub fn plugins() -> PathBuf {
    std::env::var_os("DOUBLETIME_TEST_PLUGINS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/plugins"))
}

/// A log line without its colour codes.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
