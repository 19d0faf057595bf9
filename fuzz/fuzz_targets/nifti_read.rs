//! Fuzzes the NIfTI readers (volume, mask, vector field) on arbitrary bytes, both plain
//! and gzip-compressed, as `.nii` / `.nii.gz` files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use hepaview::io::nifti;

fuzz_target!(|data: &[u8]| {
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
