//! Fuzzes the DICOM folder path end to end: header sniffing and parsing, grouping into
//! studies and series, the series planner (sorting, gaps, duplicates, odd sizes, tilt) and
//! pixel decoding. The input is split on `HVSPLIT` into up to 6 files of one folder, so
//! the planner sees several slices that disagree with each other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use hepaview::io::dicom::{load_series, no_progress, scan};

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on any panic, even one Hepaview catches around a third-party
    // codec; restore the default hook so only panics that escape count as crashes.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let _ = std::panic::take_hook();
    });
    let dir = std::env::temp_dir().join(format!("hv-fuzz-dicom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let parts = hepaview::fuzzing::split_files(data);
    for (i, p) in parts.iter().enumerate() {
        let _ = std::fs::write(dir.join(format!("{i}.dcm")), p);
    }
    if let Ok(found) = scan(&dir, &no_progress) {
        for s in found.all_series() {
            // a fuzzed header can claim a huge image; decoding it is not the point here
            if s.geometry.len() <= 1 << 20 {
                let _ = load_series(s, &no_progress);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
});
