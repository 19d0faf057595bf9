//! Fuzzes the NIfTI readers (volume, mask, vector field) on arbitrary bytes, both plain
//! and gzip-compressed, as `.nii` / `.nii.gz` files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use hepaview::io::nifti;

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on any panic, even one Hepaview catches around a third-party
    // codec or crate; restore the default hook so only panics that escape count as crashes.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let _ = std::panic::take_hook();
    });
    let gz = data.starts_with(&[0x1f, 0x8b]);
    let name = if gz { "f.nii.gz" } else { "f.nii" };
    let dir = std::env::temp_dir().join(format!("hv-fuzz-nifti-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let path = dir.join(name);
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let _ = nifti::read_ct(&path);
    let _ = nifti::read_mask(&path);
    let _ = nifti::read_field(&path);
    let _ = std::fs::remove_file(&path);
});
