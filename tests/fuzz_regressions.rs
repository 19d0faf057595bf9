//! Inputs the fuzzers found that once crashed Hepaview (`fuzz/regressions/`), replayed the
//! way `fuzz/fuzz_targets/dicom_series.rs` feeds them: split on `HVSPLIT` into the files
//! of one folder, scanned, every series loaded. Each must end in Ok or a clear error.

use hepaview::io::dicom::{load_series, no_progress, scan, DicomError};

fn replay(data: &[u8]) -> Vec<Result<(), DicomError>> {
    let dir = tempfile::tempdir().unwrap();
    let parts = hepaview::fuzzing::split_files(data);
    for (i, p) in parts.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.dcm")), p).unwrap();
    }
    match scan(dir.path(), &no_progress) {
        Ok(found) => found.all_series().map(|s| load_series(s, &no_progress).map(|_| ())).collect(),
        Err(e) => vec![Err(e)],
    }
}

#[test]
fn rle_segment_shorter_than_its_header_is_an_error_not_a_panic() {
    let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/dicom_rle_panic.bin")).unwrap();
    let results = replay(&data);
    assert!(
        results.iter().any(|r| matches!(r, Err(DicomError::Decode { .. }))),
        "expected a decode error naming the file, got {results:?}"
    );
}

#[test]
fn every_regression_input_ends_cleanly() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        // reaching here without a panic is the test; errors must name a file
        for r in replay(&data) {
            if let Err(e) = r {
                assert!(
                    e.to_string().contains(".dcm") || matches!(e, DicomError::NoImages { .. }),
                    "{}: {e}",
                    p.display()
                );
            }
        }
    }
}
