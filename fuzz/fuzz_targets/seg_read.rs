//! Fuzzes the DICOM SEG reader on arbitrary bytes as one `.dcm` file, without and with a
//! reference grid (the grid of `dcmqi-liver`'s CT: 512 × 512 × 3), so both the segment
//! table and the frame placement onto a study are exercised.
#![no_main]

use hepaview::io::seg::read_seg;
use hepaview::volume::Geometry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on any panic, even one Hepaview catches around a third-party
    // codec or crate; restore the default hook so only panics that escape count as crashes.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let _ = std::panic::take_hook();
    });
    let dir = std::env::temp_dir().join(format!("hv-fuzz-seg-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let path = dir.join("seg.dcm");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = read_seg(&path, None);
    let grid = Geometry {
        shape: [3, 512, 512],
        spacing_mm: [5.0, 0.78125, 0.78125],
        origin_mm: [-200.0, -200.0, -100.0],
        direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    };
    let _ = read_seg(&path, Some(&grid));
    let _ = std::fs::remove_file(&path);
});
