//! The demo study on disk: the phantom written as a user would get it from PACS (three
//! DICOM series of one study) plus its ground truth (labels, anatomy, true fields, lesions;
//! for the follow-up visit its parts and pose).

use std::path::{Path, PathBuf};

use super::lesions::follow_up_pose;
use super::render::make_phantom;
use super::{PhantomOptions, Visit};
use crate::io::dicom_write::{self, uid_from, SeriesMeta, WriteError};
use crate::io::nifti::{self, NiftiError};
use crate::io::phase::Phase;

/// Where `write_demo_study` put everything.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DemoFiles {
    pub root: PathBuf,
    /// One DICOM series folder's files per phase, in slice order.
    pub dicom: Vec<(Phase, Vec<PathBuf>)>,
    pub labels: PathBuf,
    pub anatomy: PathBuf,
    pub true_fields: Vec<(Phase, PathBuf)>,
    pub lesions_json: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{}: already exists; the demo study is only written where nothing would be overwritten, so pick a new or empty folder", path.display())]
    Exists { path: PathBuf },
    #[error("{}: folder is not empty; a DICOM reader scanning it would mix other files into the demo series, so pick a new or empty folder", path.display())]
    NotEmpty { path: PathBuf },
    #[error("cannot write {}: {source}; check the path, free space and write permission", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Dicom(#[from] WriteError),
    #[error(transparent)]
    Nifti(#[from] NiftiError),
}

/// Writes the phantom as a study a user would get from PACS plus its ground truth:
/// `out/dicom/<phase>/NNNN.dcm` (three series of one study), `out/labels.nii.gz`,
/// `out/anatomy.nii.gz`, `out/true_field_{arterial,delayed}.nii.gz`, `out/lesions.json`.
/// Checks every target first and writes nothing if any exists.
pub fn write_demo_study(out: &Path, opts: &PhantomOptions) -> Result<DemoFiles, DemoError> {
    write_demo_study_with_progress(out, opts, &|_, _| {})
}

/// [`write_demo_study`], saying each step as it starts (fraction 0…1 and what): the
/// full-size study takes a quarter of a minute, most of it making the phantom.
pub fn write_demo_study_with_progress(
    out: &Path,
    opts: &PhantomOptions,
    progress: &dyn Fn(f32, &str),
) -> Result<DemoFiles, DemoError> {
    let labels_path = out.join("labels.nii.gz");
    let anatomy_path = out.join("anatomy.nii.gz");
    let field_paths: Vec<(Phase, PathBuf)> = [Phase::Arterial, Phase::Delayed]
        .iter()
        .map(|&p| (p, out.join(format!("true_field_{}.nii.gz", p.slug()))))
        .collect();
    let lesions_path = out.join("lesions.json");
    for p in [&labels_path, &anatomy_path, &lesions_path].into_iter().chain(field_paths.iter().map(|(_, p)| p)) {
        if p.exists() {
            return Err(DemoError::Exists { path: p.clone() });
        }
    }
    for phase in Phase::CONTRAST_ORDER {
        let dir = out.join("dicom").join(phase.slug());
        if let Ok(mut entries) = std::fs::read_dir(&dir) {
            if entries.next().is_some() {
                return Err(DemoError::NotEmpty { path: dir });
            }
        }
    }

    progress(0.0, "making the phantom (anatomy, lesions, breathing, three phases)");
    let phantom = make_phantom(opts);
    let seed = format!("hepaview-phantom/{}", opts.seed);
    let study_uid = uid_from(&format!("{seed}/study"));
    let for_uid = uid_from(&format!("{seed}/frame-of-reference"));
    let mut dicom = Vec::new();
    for (n, phase) in phantom.phases.iter().enumerate() {
        let meta = SeriesMeta {
            patient_name: "PHANTOM^HEPAVIEW".into(),
            // one patient across visits (the follow-up's noise seed is the baseline's + 1)
            patient_id: format!("HV-PHANTOM-{}", (opts.seed - (opts.visit == Visit::FollowUp) as u64) % 1_000_000),
            patient_birth_date: "19620514".into(),
            patient_sex: "M".into(),
            study_uid: study_uid.clone(),
            study_date: if opts.visit == Visit::FollowUp { "20260316".into() } else { "20260115".into() },
            study_time: "095800".into(),
            study_id: "1".into(),
            accession_number: format!("HV{:08}", opts.seed % 100_000_000),
            series_uid: uid_from(&format!("{seed}/series/{}", phase.name.slug())),
            series_number: 3 + n as u32,
            series_description: phase.description.clone(),
            acquisition_time: phase.acquisition_time.clone(),
            contrast_agent: Some("IOPAMIDOL 370".into()),
            frame_of_reference_uid: for_uid.clone(),
            manufacturer: "Hepaview phantom".into(),
            uid_seed: seed.clone(),
            kvp: 120.0,
        };
        let dir = out.join("dicom").join(phase.name.slug());
        progress(0.6 + 0.1 * n as f32, &format!("writing the {} phase as DICOM", phase.name));
        let files = dicom_write::write_ct_series(&phase.volume, &meta, &dir)?;
        dicom.push((phase.name, files));
    }

    progress(0.9, "writing the labels, anatomy and true fields");
    nifti::write_volume(&phantom.labels, &labels_path)?;
    if let Some(parts) = &phantom.parts {
        nifti::write_volume(parts, &out.join("parts.nii.gz"))?;
        let truth = serde_json::json!({
            "visit": "follow_up",
            "follow_up_to_baseline": follow_up_pose(),
            "baseline_to_follow_up": follow_up_pose().inverse(),
            "note": "rigid pose of the follow-up (points in LPS mm); parts.nii.gz labels 4 viable, 5 necrotic, 6 lipiodol",
        });
        let path = out.join("follow_up_truth.json");
        let bytes = serde_json::to_vec_pretty(&truth)
            .map_err(|e| DemoError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
        dicom_write::write_new_file(&path, &bytes).map_err(|e| match e {
            WriteError::Exists { path } => DemoError::Exists { path },
            WriteError::Io { path, source } => DemoError::Io { path, source },
            other => DemoError::Dicom(other),
        })?;
    }
    nifti::write_volume(&phantom.anatomy, &anatomy_path)?;
    for (phase, path) in &field_paths {
        if let Some(field) = phantom.true_field(*phase) {
            nifti::write_field(field, path)?;
        }
    }
    let json = serde_json::to_vec_pretty(&phantom.lesions)
        .map_err(|e| DemoError::Io { path: lesions_path.clone(), source: std::io::Error::other(e) })?;
    dicom_write::write_new_file(&lesions_path, &json).map_err(|e| match e {
        WriteError::Exists { path } => DemoError::Exists { path },
        WriteError::Io { path, source } => DemoError::Io { path, source },
        other => DemoError::Dicom(other),
    })?;

    progress(1.0, "written");
    Ok(DemoFiles {
        root: out.to_path_buf(),
        dicom,
        labels: labels_path,
        anatomy: anatomy_path,
        true_fields: field_paths,
        lesions_json: lesions_path,
    })
}
