//! How the fuzz targets turn one input into the files of a folder, shared with the tests
//! that replay what the fuzzers found (`tests/fuzz_regressions.rs`), so a replay feeds the
//! library exactly what the fuzzer did. Not part of the application's API.

/// The separator that splits one fuzz input into several files.
pub const SPLIT: &[u8] = b"HVSPLIT";

/// Splits `data` on [`SPLIT`] into at most six parts, one per file.
pub fn split_files(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() < 5 {
        match rest.windows(SPLIT.len()).position(|w| w == SPLIT) {
            Some(p) => {
                parts.push(&rest[..p]);
                rest = &rest[p + SPLIT.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}
