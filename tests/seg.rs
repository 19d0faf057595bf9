//! DICOM SEG: writing from a mask over a DICOM series and reading back exactly,
//! `dciodvfy` finding no errors, the shared SEG files (dcmqi's liver, overlapping
//! segments, a LABELMAP SEG, 1-bit RLE, frames not byte aligned), clear errors for what
//! is not a readable segmentation, and `mask-convert` both ways (the CLI's own file is
//! compiled in below).

mod common;

#[allow(dead_code)]
#[path = "../src/cli/mask_convert.rs"]
mod mask_cli;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use hepaview::io::dicom::{self, SeriesInfo};
use hepaview::io::nifti;
use hepaview::io::seg::{self, SegError, SegKind, SegWriteOptions, SegmentDef};
use hepaview::phantom::{self, PhantomOptions};
use hepaview::volume::{Geometry, Mask, Volume};

/// The small demo study (three DICOM series and labels.nii.gz on the portal venous grid).
fn demo() -> (tempfile::TempDir, PathBuf, SeriesInfo, Mask) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("demo");
    phantom::write_demo_study(&root, &PhantomOptions::small()).unwrap();
    let pv = root.join("dicom").join("portal_venous");
    let scan = dicom::scan(&pv, &dicom::no_progress).unwrap();
    let series = scan.all_series().next().unwrap().clone();
    let (mask, _) = nifti::read_mask(&root.join("labels.nii.gz")).unwrap();
    (dir, root, series, mask)
}

fn fixed_time() -> SegWriteOptions {
    SegWriteOptions { content_datetime: Some(("20260301".into(), "120000".into())), ..SegWriteOptions::default() }
}

fn counts(m: &Mask) -> [usize; 256] {
    let mut n = [0usize; 256];
    for &v in m.data.iter() {
        n[v as usize] += 1;
    }
    n
}

#[test]
fn demo_mask_round_trips_through_seg_and_passes_dciodvfy() {
    let (dir, _root, series, mask) = demo();
    assert!(mask.geometry.max_corner_distance_mm(&series.geometry) < 0.01, "demo labels are on the portal venous grid");
    let n = counts(&mask);
    assert!(n[1] > 0 && n[2] > 0, "demo has liver and tumour");
    let out = dir.path().join("labels.seg.dcm");
    let w = seg::write_seg(&mask, &series, &SegmentDef::lits(), &out, &fixed_time()).unwrap();
    // label 3 (vessel) is absent in the demo: left out with a warning
    assert_eq!(w.segments.iter().map(|s| s.0).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(w.warnings.len(), 1, "{:?}", w.warnings);
    // only frames with the segment: fewer than 2 × slices
    let slices_with = |l: u8| {
        (0..mask.shape()[0]).filter(|&k| mask.data.index_axis(ndarray::Axis(0), k).iter().any(|&v| v == l)).count()
    };
    assert_eq!(w.frames, slices_with(1) + slices_with(2));

    let back = seg::read_seg(&out, Some(&series.geometry)).unwrap();
    assert_eq!(back.kind, SegKind::Binary);
    assert_eq!(back.segments.len(), 2);
    assert_eq!(back.segments[0].label, "Liver");
    assert_eq!(back.segments[1].property_type.as_ref().unwrap().value, "108369006");
    assert_eq!(back.referenced_series_uid.as_deref(), Some(series.series_uid.as_str()));
    let rgb = back.segments[0].rgb.unwrap();
    assert!((rgb[0] as i32 - 217).abs() <= 1 && (rgb[1] as i32 - 115).abs() <= 1, "{rgb:?}");
    let (m, overlaps) = back.label_mask();
    assert_eq!(overlaps, 0);
    assert_eq!(m.data, mask.data, "SEG → mask must give the mask back exactly");

    // its own grid (no reference): same voxel counts, frames at the same world positions
    let own = seg::read_seg(&out, None).unwrap();
    assert_eq!(own.voxel_counts(), vec![n[1], n[2]]);
    let first_liver_k = (0..mask.shape()[0])
        .find(|&k| mask.data.index_axis(ndarray::Axis(0), k).iter().any(|&v| v == 1 || v == 2))
        .unwrap();
    let p = mask.geometry.index_to_world([0.0, 0.0, first_liver_k as f64]);
    for (a, b) in own.geometry.origin_mm.iter().zip(p) {
        assert!((a - b).abs() < 1e-3, "{:?} vs {p:?}", own.geometry.origin_mm);
    }

    // never overwrite
    match seg::write_seg(&mask, &series, &SegmentDef::lits(), &out, &fixed_time()) {
        Err(SegError::Write(e)) => assert!(e.to_string().contains("already exists"), "{e}"),
        other => panic!("expected an Exists error, got {other:?}"),
    }
    // the same input and time give the same bytes (UIDs derive from content)
    let again = dir.path().join("again.dcm");
    seg::write_seg(&mask, &series, &SegmentDef::lits(), &again, &fixed_time()).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());

    if let Some(dciodvfy) = common::tool("dciodvfy") {
        let o = Command::new(dciodvfy).arg(&out).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        eprintln!("dciodvfy {}:\n{text}", out.display());
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error")).collect();
        assert!(errors.is_empty(), "dciodvfy errors:\n{text}");
        assert!(text.contains("Segmentation"), "dciodvfy did not recognise the IOD:\n{text}");
    }
}

#[test]
fn fractional_seg_is_kept_from_half_the_maximum() {
    use dicom_core::value::PrimitiveValue;
    use dicom_core::{DataElement, VR};
    use dicom_dictionary_std::tags;
    let (dir, _root, series, mask) = demo();
    let bin = dir.path().join("bin.dcm");
    seg::write_seg(&mask, &series, &SegmentDef::lits(), &bin, &fixed_time()).unwrap();
    // the same frames as FRACTIONAL 8-bit: set bits become 128 or 255, clear ones 0 or 127
    let mut obj = dicom_object::open_file(&bin).unwrap();
    let bits = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap().into_owned();
    let frames: usize = obj.element(tags::NUMBER_OF_FRAMES).unwrap().to_int::<usize>().unwrap();
    let n = frames * mask.shape()[1] * mask.shape()[2];
    let values: Vec<u8> = (0..n)
        .map(|p| {
            let set = (bits[p / 8] >> (p % 8)) & 1 == 1;
            match (set, p % 2 == 0) {
                (true, true) => 128,
                (true, false) => 255,
                (false, true) => 127,
                (false, false) => 0,
            }
        })
        .collect();
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    obj.put(DataElement::new(tags::SEGMENTATION_TYPE, VR::CS, PrimitiveValue::from("FRACTIONAL")));
    obj.put(DataElement::new(tags::SEGMENTATION_FRACTIONAL_TYPE, VR::CS, PrimitiveValue::from("PROBABILITY")));
    obj.put(us(tags::MAXIMUM_FRACTIONAL_VALUE, 255));
    obj.put(us(tags::BITS_ALLOCATED, 8));
    obj.put(us(tags::BITS_STORED, 8));
    obj.put(us(tags::HIGH_BIT, 7));
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::U8(values.into())));
    let frac = dir.path().join("frac.dcm");
    obj.write_to_file(&frac).unwrap();
    let r = seg::read_seg(&frac, Some(&series.geometry)).unwrap();
    assert_eq!(r.kind, SegKind::Fractional { max: 255 });
    assert_eq!(r.label_mask().0.data, mask.data);
}

#[test]
fn seg_refuses_a_mask_on_another_grid() {
    let (dir, _root, series, mask) = demo();
    let mut g = mask.geometry.clone();
    g.origin_mm[0] += 3.0;
    let moved = Volume::new(mask.data.clone(), g);
    let err =
        seg::write_seg(&moved, &series, &SegmentDef::lits(), &dir.path().join("x.dcm"), &fixed_time()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SegError::GridMismatch { .. }), "{msg}");
    assert!(msg.contains("--resample") && msg.contains("3.000 mm"), "{msg}");
    assert!(!dir.path().join("x.dcm").exists());
    let empty: Mask = Volume::filled(mask.geometry.clone(), 0);
    assert!(matches!(
        seg::write_seg(&empty, &series, &SegmentDef::lits(), &dir.path().join("y.dcm"), &fixed_time()),
        Err(SegError::Empty { .. })
    ));
}

/// A tiny NRRD reader for dcmqi's baseline (gzip, short, 3-D, axis-aligned).
fn read_nrrd_short(path: &Path) -> (Vec<usize>, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap();
    let split = bytes.windows(2).position(|w| w == b"\n\n").unwrap();
    let header = String::from_utf8_lossy(&bytes[..split]).to_string();
    assert!(header.contains("type: short") && header.contains("encoding: gzip"), "{header}");
    let sizes: Vec<usize> = header
        .lines()
        .find_map(|l| l.strip_prefix("sizes: "))
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&bytes[split + 2..]).read_to_end(&mut raw).unwrap();
    (sizes, raw.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect())
}

fn ct3(data: &Path) -> SeriesInfo {
    let scan = dicom::scan(&data.join("dcmqi-liver/ct-3slice"), &dicom::no_progress).unwrap();
    let s = scan.all_series().next().unwrap().clone();
    s
}

#[test]
fn reads_dcmqi_liver_onto_its_ct_and_matches_the_baseline() {
    let Some(data) = common::shared_data() else { return };
    let ct = ct3(&data);
    assert_eq!(ct.geometry.shape, [3, 512, 512]);
    let r = seg::read_seg(&data.join("dcmqi-liver/liver.dcm"), Some(&ct.geometry)).unwrap();
    assert_eq!(r.segments.len(), 1);
    assert_eq!(r.referenced_series_uid.as_deref(), Some(ct.series_uid.as_str()));
    let (m, _) = r.label_mask();
    // frames are stored in descending z; placed by position they land ascending
    let per_slice: Vec<usize> =
        (0..3).map(|k| m.data.index_axis(ndarray::Axis(0), k).iter().filter(|&&v| v == 1).count()).collect();
    assert_eq!(per_slice, vec![36233, 35645, 35220]);
    let (sizes, base) = read_nrrd_short(&data.join("dcmqi-liver/liver_seg.nrrd"));
    assert_eq!(sizes, vec![512, 512, 3]);
    let differing = m.data.iter().zip(&base).filter(|(a, b)| (**a != 0) != (**b != 0)).count();
    assert_eq!(differing, 0, "liver.dcm differs from dcmqi's baseline label map");

    // the same on its own grid
    let own = seg::read_seg(&data.join("dcmqi-liver/liver.dcm"), None).unwrap();
    assert_eq!(own.geometry.shape, [3, 512, 512]);
    assert!(own.geometry.max_corner_distance_mm(&ct.geometry) < 1e-3, "{:?}", own.geometry);
    assert_eq!(own.label_mask().0.data, m.data);

    // the pydicom variants: 1-bit RLE and 510×510 frames whose bits straddle bytes
    let rle = seg::read_seg(&data.join("odd/pydicom/liver_rle.dcm"), Some(&ct.geometry)).unwrap();
    assert_eq!(rle.transfer_syntax, "1.2.840.10008.1.2.5");
    assert_eq!(rle.label_mask().0.data, m.data, "RLE SEG decodes to the same liver");
    let nba = seg::read_seg(&data.join("odd/pydicom/liver_nonbyte_aligned.dcm"), None).unwrap();
    assert_eq!(nba.geometry.shape, [3, 510, 510]);
    assert_eq!(nba.voxel_counts(), vec![36233 + 35645 + 35220]);
    let nba_on_ct = seg::read_seg(&data.join("odd/pydicom/liver_nonbyte_aligned.dcm"), Some(&ct.geometry)).unwrap();
    assert_eq!(nba_on_ct.label_mask().0.data, m.data, "the 510×510 crop lands on the same voxels");
}

#[test]
fn reads_overlapping_and_labelmap_segs() {
    let Some(data) = common::shared_data() else { return };
    let ct = ct3(&data);
    let r = seg::read_seg(&data.join("dcmqi-liver/partial_overlaps.dcm"), Some(&ct.geometry)).unwrap();
    let names: Vec<&str> = r.segments.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(names, vec!["GREEN", "ORANGE", "PURPLE", "LIGHT_BLUE", "DARK_BLUE"]);
    assert_eq!(r.voxel_counts(), vec![9602, 11888, 117 + 117 + 10509, 6693, 4713]);
    let (m, overlaps) = r.label_mask();
    assert!(overlaps > 0, "these segments overlap");
    // tissue, capillary and oedema are neither liver nor tumour: labels of their own from
    // 4 with their names (not segment numbers 1, 2, 3 read as liver, tumour, vessel);
    // the artery and the vein are vessels
    assert_eq!(r.segment_labels, vec![Some(4), Some(3), Some(5), Some(6), Some(3)]);
    let labels = r.labels();
    let named: Vec<(u8, &str)> = labels.iter().map(|l| (l.value, l.name.as_str())).collect();
    assert_eq!(named, vec![(3, "vessel"), (4, "GREEN"), (5, "PURPLE"), (6, "LIGHT_BLUE")]);
    assert!(m.data.iter().all(|&v| v != 1 && v != 2), "nothing here is liver or tumour");
    let said: Vec<String> = r.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(said.iter().filter(|w| w.contains("is not liver, tumour or vessel")).count(), 3, "{said:?}");
    assert!(
        said.iter().any(|w| w.contains("\"LIGHT_BLUE\"") && w.contains("Edema") && w.contains("label 6")),
        "{said:?}"
    );

    let lm = seg::read_seg(&data.join("dcmqi-liver/sparse-labelmap-ppv5.dcm"), None).unwrap();
    assert_eq!(lm.kind, SegKind::Labelmap);
    // frames at z −177.75 and −172.75 with 2.5 mm spacing: a 3-slice grid with an empty middle
    assert_eq!(lm.geometry.shape, [3, 38, 24]);
    assert!((lm.geometry.spacing_mm[0] - 2.5).abs() < 1e-9 && (lm.geometry.spacing_mm[1] - 0.7).abs() < 1e-9);
    let (m, _) = lm.label_mask();
    let per_slice: Vec<usize> =
        (0..3).map(|k| m.data.index_axis(ndarray::Axis(0), k).iter().filter(|&&v| v == 1).count()).collect();
    assert_eq!(per_slice, vec![315, 0, 315]);
    assert!(m.data.iter().all(|&v| v <= 1), "background segment 0 is not a label");
}

#[test]
fn non_seg_files_get_clear_errors() {
    let Some(data) = common::shared_data() else { return };
    let dir = data.join("odd/pydicom");
    let mut seen = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("liver") {
            continue;
        }
        seen += 1;
        // must return, not panic; a non-SEG names its file and says what it is
        let err = seg::read_seg(&p, None).expect_err(&name);
        let msg = err.to_string();
        assert!(msg.contains(&name), "{msg}");
        if let SegError::NotSeg { .. } = err {
            assert!(msg.contains("not a DICOM segmentation"), "{msg}");
        }
    }
    assert!(seen >= 20);

    // a SEG whose transfer syntax claims RLE but whose pixels are not encapsulated
    let tmp = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(data.join("dcmqi-liver/liver.dcm")).unwrap();
    let from = b"1.2.840.10008.1.2.1\0";
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    bytes[at..at + from.len()].copy_from_slice(b"1.2.840.10008.1.2.5\0");
    let p = tmp.path().join("claims_rle.dcm");
    std::fs::write(&p, &bytes).unwrap();
    match seg::read_seg(&p, None) {
        Err(e @ SegError::Decode { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("claims_rle.dcm") && msg.contains("RLE Lossless (1.2.840.10008.1.2.5)"), "{msg}");
        }
        Err(SegError::Read { .. }) => {} // dicom-rs may refuse the mismatch itself; still an error naming the file
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn mask_convert_both_ways_and_refuses_other_grids() {
    let (dir, root, series, mask) = demo();
    let study = root.join("dicom");
    let labels = root.join("labels.nii.gz");
    let seg_path = dir.path().join("m.dcm");
    // three series in the study: the mask's grid picks the portal venous one
    let rep = mask_cli::mask_convert_with(&labels, &study, &seg_path, &Default::default()).unwrap();
    assert!(!rep.resampled);
    let nii = dir.path().join("back.nii.gz");
    mask_cli::mask_convert(&seg_path, &study, &nii).unwrap();
    let (back, _) = nifti::read_mask(&nii).unwrap();
    assert_eq!(back.data, mask.data);
    assert!(back.geometry.max_corner_distance_mm(&series.geometry) < 1e-3);
    // both files exist now: no overwrite
    assert!(mask_cli::mask_convert(&labels, &study, &seg_path).is_err());

    // a mask on another grid: a clear error that says how to resample, then --resample
    let shifted_path = dir.path().join("shifted.nii.gz");
    let g = Geometry {
        origin_mm: [mask.geometry.origin_mm[0] + 6.0, mask.geometry.origin_mm[1], mask.geometry.origin_mm[2]],
        ..mask.geometry.clone()
    };
    nifti::write_volume(&Volume::new(mask.data.clone(), g), &shifted_path).unwrap();
    let err =
        mask_cli::mask_convert(&shifted_path, &study.join("portal_venous"), &dir.path().join("s.dcm")).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("--resample") && msg.contains("does not match"), "{msg}");
    let err = mask_cli::mask_convert(&shifted_path, &study, &dir.path().join("s.dcm")).unwrap_err();
    assert!(format!("{err:#}").contains("--series N"), "{err:#}");
    let opts = mask_cli::MaskConvertOptions { resample: true, series: Some(1) };
    let rep = mask_cli::mask_convert_with(&shifted_path, &study, &dir.path().join("s.dcm"), &opts).unwrap();
    assert!(rep.resampled);
    // shifted by one voxel (6 mm) in x: the resampled mask is the original moved by one column
    let r = seg::read_seg(&dir.path().join("s.dcm"), Some(&series.geometry)).unwrap().label_mask().0;
    let [nz, ny, nx] = mask.shape();
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx - 1 {
                assert_eq!(r.data[[k, j, i + 1]], mask.data[[k, j, i]], "at {k},{j},{i}");
            }
        }
    }
}

/// The demo mask with its tumour relabelled 7 and written as a SEG whose second segment is
/// "Bone" (SNOMED 272673000): segment number 2, the number a tumour usually has.
fn seg_with_bone(dir: &Path, series: &SeriesInfo, mask: &Mask) -> (PathBuf, Mask) {
    let mut m = mask.clone();
    m.data.mapv_inplace(|v| if v == 2 { 7 } else { v });
    let bone = SegmentDef {
        label: 7,
        name: "Bone".into(),
        rgb: [241, 214, 145],
        category: seg::Code::sct("85756007", "Tissue"),
        property_type: seg::Code::sct("272673000", "Bone"),
        algorithm: seg::Algorithm::Manual,
    };
    let defs = vec![SegmentDef::for_label(1, "Liver", [217, 115, 89]), bone];
    let out = dir.join("bone.seg.dcm");
    let w = seg::write_seg(&m, series, &defs, &out, &fixed_time()).unwrap();
    assert_eq!(w.segments.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(), vec![(1, 1), (7, 2)]);
    (out, m)
}

#[test]
fn a_segment_of_unknown_meaning_keeps_a_label_and_name_of_its_own() {
    let (dir, _root, series, mask) = demo();
    let (path, _) = seg_with_bone(dir.path(), &series, &mask);
    let r = seg::read_seg(&path, Some(&series.geometry)).unwrap();
    assert_eq!(r.segment_labels, vec![Some(1), Some(4)], "bone is neither liver (1) nor tumour (2)");
    let (m, overlaps) = r.label_mask();
    assert_eq!(overlaps, 0);
    let n = counts(&m);
    let before = counts(&mask);
    assert_eq!((n[1], n[2], n[4]), (before[1], 0, before[2]), "the bone voxels are label 4, never tumour");
    let labels = r.labels();
    assert_eq!(labels.iter().map(|l| (l.value, l.name.as_str())).collect::<Vec<_>>(), vec![(1, "liver"), (4, "Bone")]);
    let said: Vec<String> = r.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        said.iter().any(|w| w.contains("segment 2 \"Bone\"") && w.contains("272673000") && w.contains("label 4")),
        "{said:?}"
    );
}

#[test]
fn seg_to_nifti_writes_the_label_names_beside_the_mask() {
    use hepaview::edit::LabelTable;
    let (dir, root, series, mask) = demo();
    let (path, _) = seg_with_bone(dir.path(), &series, &mask);
    let study = root.join("dicom");
    let nii = dir.path().join("out.nii.gz");
    let rep = mask_cli::mask_convert_with(&path, &study, &nii, &Default::default()).unwrap();
    assert!(
        rep.warnings.iter().any(|w| w.contains("\"Bone\"") && w.contains("not liver, tumour or vessel")),
        "{:?}",
        rep.warnings
    );
    assert_eq!(rep.labels.iter().map(|l| l.0).collect::<Vec<_>>(), vec![1, 4]);
    let (back, _) = nifti::read_mask(&nii).unwrap();
    assert_eq!(counts(&back)[4], counts(&mask)[2]);
    let sidecar = dir.path().join("out.labels.txt");
    let table = LabelTable::from_itksnap(&std::fs::read_to_string(&sidecar).unwrap(), "out.labels.txt").unwrap();
    assert_eq!(table.name_of(1), "liver");
    assert_eq!(table.name_of(4), "Bone");
    assert_eq!(&table.get(4).unwrap().rgba[..3], &[241, 214, 145][..], "the SEG's colour");
    assert!(table.get(2).is_none(), "no tumour in this SEG");

    // and back to SEG: the bone segment keeps its name (read from the label file)
    let again = dir.path().join("again.dcm");
    mask_cli::mask_convert(&nii, &study, &again).unwrap();
    let r = seg::read_seg(&again, None).unwrap();
    assert_eq!(r.segments.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), vec!["Liver", "Bone"]);

    // a label file already there is never overwritten: the conversion is refused first
    let other = dir.path().join("other.nii.gz");
    std::fs::write(dir.path().join("other.labels.txt"), "mine").unwrap();
    let err = mask_cli::mask_convert(&path, &study, &other).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("other.labels.txt") && msg.contains("never overwrites"), "{msg}");
    assert!(!other.exists(), "nothing written");
    assert_eq!(std::fs::read_to_string(dir.path().join("other.labels.txt")).unwrap(), "mine");
}
