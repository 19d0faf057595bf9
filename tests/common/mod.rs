//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// `../shared/data` beside the checkout. Missing data skips a test with a message, except
/// under CI (CI=true), where it always exists and its absence is a failure.
pub fn shared_data() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if p.is_dir() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("../shared/data is missing under CI");
    }
    eprintln!("skipping: ../shared/data not found beside the checkout");
    None
}

/// A tool from Debian's packages; under CI its absence fails the test.
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
        .unwrap_or(None);
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("{name} is not installed; .ci/run installs it");
        }
        eprintln!("skipping: {name} not installed (apt-get install it, or run .ci/run)");
    }
    found
}
