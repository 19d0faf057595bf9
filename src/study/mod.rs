//! The document the app and the CLI work on: the phases of one study (each a CT volume
//! with its detected phase and why), the label mask if any, and what went wrong while
//! loading. Opening goes through `io`; nothing here draws. [`job`]: long work on worker
//! threads with progress and cancel; [`registration`]: every moving phase onto the fixed
//! one (the one loop) and the registrations the study keeps; [`segment`]: its phases
//! handed to `segment`; [`analysis`]: the recipes the CLI and the viewer share.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::dicom::{self, DicomError, StudyInfo};
use crate::io::nifti::{self, NiftiError};
use crate::io::phase::{detect_study_phases, phase_from_description, Phase, PhaseCall};
use crate::io::Warning;
use crate::phantom::{self, PhantomOptions};
use crate::volume::{CtVolume, Mask};

pub mod analysis;
pub mod compare;
pub mod edits;
pub mod follow_outlines;
pub mod job;
pub mod reading;
pub mod registration;
pub mod segment;
pub mod visits;

pub use crate::volume::Progress;
pub use job::{take_ended, Ended, Job};
pub use registration::{Demons, Registration};
pub use segment::{segment_phases, segment_phases_live, segment_study, segment_study_live};

pub use crate::volume::next_key;

/// One phase of the study.
#[derive(Clone)]
pub struct PhaseImage {
    pub call: PhaseCall,
    /// SeriesDescription or file name.
    pub description: String,
    /// Where it came from (folder or file).
    pub source: PathBuf,
    pub volume: Arc<CtVolume>,
    pub key: u64,
}

impl PhaseImage {
    pub fn phase(&self) -> Phase {
        self.call.phase
    }
}

/// A label mask shown over the phases.
#[derive(Clone)]
pub struct Labels {
    pub mask: Arc<Mask>,
    pub key: u64,
    pub source: PathBuf,
}

#[derive(Clone)]
pub struct Study {
    pub title: String,
    /// In display order: non-contrast, arterial, portal venous, delayed, unknown.
    pub phases: Vec<PhaseImage>,
    pub labels: Option<Labels>,
    pub warnings: Vec<Warning>,
    /// The moving phases registered onto the fixed one in the viewer, when the user ran it.
    pub registrations: Vec<Registration>,
    /// The follow-up visits shown beside the baseline (their phases are in `phases`; see
    /// [`visits`]).
    pub visits: Vec<visits::Visit>,
}

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error(transparent)]
    Dicom(#[from] DicomError),
    #[error(transparent)]
    Nifti(#[from] NiftiError),
    #[error("{path}: no CT volume found to open; `hepaview info {path}` lists what is there")]
    NothingToOpen { path: PathBuf },
    #[error("{}: {why}", path.display())]
    Mixed { path: PathBuf, why: String },
}

fn is_nifti(p: &Path) -> bool {
    let s = p.to_string_lossy().to_lowercase();
    s.ends_with(".nii") || s.ends_with(".nii.gz")
}

/// File-name words that mark a NIfTI as a label mask rather than an image.
fn looks_like_mask(p: &Path) -> bool {
    let name = p.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    ["label", "seg", "mask", "liver.nii"].iter().any(|w| name.contains(w))
}

impl Study {
    /// The built-in tri-phase demo, made in memory (no files written).
    pub fn demo(opts: &PhantomOptions) -> Study {
        let p = phantom::make_phantom(opts);
        let phases = p
            .phases
            .into_iter()
            .map(|ph| PhaseImage {
                call: PhaseCall { phase: ph.name, confidence: 1.0, reason: "built-in demo study".into() },
                description: ph.description,
                source: PathBuf::from("demo"),
                volume: Arc::new(ph.volume),
                key: next_key(),
            })
            .collect();
        let mut s = Study::of_phases("Demo: procedural tri-phase liver (HCC, hemangioma, cyst, metastasis)", phases);
        s.labels = Some(Labels { mask: Arc::new(p.labels), key: next_key(), source: PathBuf::from("demo") });
        s
    }

    /// Opens a DICOM folder (its largest multi-series CT study) or NIfTI files (each an
    /// image phase named from its file name, or a label mask when named like one).
    pub fn open(paths: &[PathBuf]) -> Result<Study, StudyError> {
        Self::open_with_progress(paths, &|_, _| true)
    }

    /// [`Study::open`] reporting progress (reading headers, then decoding each series);
    /// stops with [`DicomError::Cancelled`] when `progress` returns false.
    pub fn open_with_progress(paths: &[PathBuf], progress: Progress) -> Result<Study, StudyError> {
        let first = paths.first().cloned().unwrap_or_default();
        if !paths.is_empty() && paths.iter().all(|p| is_nifti(p)) {
            return Self::open_nifti(paths);
        }
        // A DICOM study plus its label mask; anything else beside a DICOM folder would be
        // dropped without a word, so it is refused instead.
        let (dicom_roots, rest): (Vec<&PathBuf>, Vec<&PathBuf>) = paths.iter().partition(|p| !is_nifti(p));
        if dicom_roots.len() > 1 {
            return Err(StudyError::Mixed {
                path: dicom_roots[1].clone(),
                why: "only one DICOM folder makes a study; open the other one on its own or as a follow-up".into(),
            });
        }
        if let Some(p) = rest.iter().find(|p| !looks_like_mask(p)) {
            return Err(StudyError::Mixed {
                path: (*p).clone(),
                why: "a NIfTI image cannot join a DICOM study; beside a DICOM folder only a label mask (a file named like mask, labels or seg) is read".into(),
            });
        }
        if rest.len() > 1 {
            return Err(StudyError::Mixed {
                path: rest[1].clone(),
                why: "one label mask per study; merge the masks first".into(),
            });
        }
        let root = dicom_roots.first().map(|p| (*p).clone()).unwrap_or(first);
        let mut study = Self::open_dicom(&root, progress)?;
        if let Some(p) = rest.first() {
            let (mask, w) = nifti::read_mask(p)?;
            study.warnings.extend(w);
            study.labels = Some(Labels { mask: Arc::new(mask), key: next_key(), source: (*p).clone() });
        }
        Ok(study)
    }

    fn open_dicom(path: &Path, progress: Progress) -> Result<Study, StudyError> {
        let scan = dicom::scan(path, &|done, total| {
            progress(0.1 * done as f32 / total.max(1) as f32, &format!("reading headers {done}/{total}"))
        })?;
        let mut warnings = scan.warnings.clone();
        // The study with most CT series (with those of the same patient's other studies
        // joined to it) is the multi-phase one a user means to read.
        let ct_series = |s: &StudyInfo| s.series.iter().filter(|x| x.modality == "CT" || x.modality.is_empty()).count();
        let joined = scan
            .studies
            .iter()
            .map(|main| join_same_patient(main, &scan.studies))
            .max_by_key(|(s, _)| (ct_series(s), s.series.len()))
            .ok_or_else(|| StudyError::NothingToOpen { path: path.to_path_buf() })?;
        let (merged, joined_uids) = joined;
        let study = &merged;
        for other in scan.studies.iter().filter(|o| joined_uids.contains(&o.study_uid)) {
            if other.study_uid == study.study_uid {
                continue;
            }
            warnings.push(Warning::new(
                path,
                format!(
                    "study {} ({}, {} series) is the same patient's ({}): its series are shown as phases of this study",
                    other.study_uid,
                    other.study_date,
                    other.series.len(),
                    join_reason(study, other),
                ),
                "the phases are registered before they are compared; open that study's folder on its own to see it apart",
            ));
        }
        let left: Vec<&StudyInfo> = scan.studies.iter().filter(|o| !joined_uids.contains(&o.study_uid)).collect();
        if !left.is_empty() {
            let names: Vec<String> = left
                .iter()
                .map(|o| format!("{} {} ({} series)", o.patient_name, o.study_date, o.series.len()).trim().to_string())
                .collect();
            warnings.push(Warning::new(
                path,
                format!(
                    "{} studies in this folder; showing {} ({}), leaving out {}",
                    scan.studies.len(),
                    study.patient_name,
                    study.study_date,
                    names.join("; ")
                ),
                "open the other study's folder on its own to see it",
            ));
        }
        let calls = detect_study_phases(study);
        let mut phases = Vec::new();
        let n_series = study.series.len();
        for (si, (s, call)) in study.series.iter().zip(calls).enumerate() {
            if s.geometry.shape[0] < 2 {
                warnings.push(Warning::new(
                    &s.frames[0].path,
                    format!("series {:?} has a single slice", s.description),
                    "not shown as a phase",
                ));
                continue;
            }
            let report = |done: usize, total: usize| {
                let f = 0.1 + 0.9 * (si as f32 + done as f32 / total.max(1) as f32) / n_series.max(1) as f32;
                progress(f, &format!("decoding {} ({done}/{total} slices)", s.description))
            };
            match dicom::load_series(s, &report) {
                Err(DicomError::Cancelled) => return Err(StudyError::Dicom(DicomError::Cancelled)),
                Ok((vol, w)) => {
                    warnings.extend(w);
                    phases.push(PhaseImage {
                        call,
                        description: s.description.clone(),
                        source: path.to_path_buf(),
                        volume: Arc::new(vol),
                        key: next_key(),
                    });
                }
                Err(e) => warnings.push(Warning::new(
                    &s.frames[0].path,
                    format!("series {:?} not loaded: {e}", s.description),
                    "",
                )),
            }
        }
        if phases.is_empty() {
            return Err(StudyError::NothingToOpen { path: path.to_path_buf() });
        }
        let title = format!("{} {} {}", study.patient_name, study.study_date, study.description).trim().to_string();
        let mut s = Study { title, phases, labels: None, warnings, registrations: Vec::new(), visits: Vec::new() };
        s.sort_phases();
        Ok(s)
    }

    fn open_nifti(paths: &[PathBuf]) -> Result<Study, StudyError> {
        let mut phases = Vec::new();
        let mut labels = None;
        let mut warnings = Vec::new();
        for p in paths {
            if looks_like_mask(p) && labels.is_some() {
                return Err(StudyError::Mixed {
                    path: p.clone(),
                    why: "one label mask per study; merge the masks first".into(),
                });
            }
            if looks_like_mask(p) {
                let (mask, w) = nifti::read_mask(p)?;
                warnings.extend(w);
                labels = Some(Labels { mask: Arc::new(mask), key: next_key(), source: p.clone() });
                continue;
            }
            let (vol, w) = nifti::read_ct(p)?;
            warnings.extend(w);
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let call = match phase_from_description(&name.replace(['_', '.'], " ")) {
                Some((phase, reason)) => PhaseCall { phase, confidence: 0.7, reason: format!("file name: {reason}") },
                None => PhaseCall {
                    phase: Phase::Unknown,
                    confidence: 0.0,
                    reason: "file name names no phase; set it in the study panel".into(),
                },
            };
            phases.push(PhaseImage {
                call,
                description: name,
                source: p.clone(),
                volume: Arc::new(vol),
                key: next_key(),
            });
        }
        if phases.is_empty() {
            return Err(StudyError::NothingToOpen { path: paths.first().cloned().unwrap_or_default() });
        }
        let title = phases.iter().map(|p| p.description.as_str()).collect::<Vec<_>>().join(", ");
        let mut s = Study::of_phases(title, phases);
        s.labels = labels;
        s.warnings = warnings;
        Ok(s)
    }

    /// A study of `phases` alone (no labels, warnings, registrations or visits), in display
    /// order: what a follow-up visit's phases are measured and registered as.
    pub fn of_phases(title: impl Into<String>, phases: Vec<PhaseImage>) -> Study {
        let mut s = Study {
            title: title.into(),
            phases,
            labels: None,
            warnings: Vec::new(),
            registrations: Vec::new(),
            visits: Vec::new(),
        };
        s.sort_phases();
        s
    }

    /// Display order: non-contrast, arterial, portal venous, delayed, then unknown.
    pub fn sort_phases(&mut self) {
        self.phases.sort_by_key(|p| p.phase());
    }

    /// The user says what phase a series is; the call records that.
    pub fn set_phase(&mut self, index: usize, phase: Phase) {
        if let Some(p) = self.phases.get_mut(index) {
            p.call = PhaseCall { phase, confidence: 1.0, reason: "set by the user".into() };
        }
    }

    /// The phase the others are registered onto and masks live on: portal venous, else the
    /// contrast phase nearest it in time (delayed, then arterial: a late-arterial +
    /// equilibrium protocol registers onto equilibrium), else the first phase.
    pub fn fixed_index(&self) -> usize {
        [Phase::PortalVenous, Phase::Delayed, Phase::Arterial]
            .iter()
            .find_map(|&want| self.phases.iter().position(|p| p.phase() == want))
            .unwrap_or(0)
    }
}

/// `main` with the series of every other study of `studies` that is the same patient's
/// joined to it, and the UIDs of the studies joined (`main`'s included). An anonymiser
/// often gives each series its own StudyInstanceUID, so arterial and equilibrium series of
/// one visit arrive as two studies: they belong together when the PatientID is the same
/// (and not empty) and they share a Frame of Reference or the study date.
fn join_same_patient(main: &StudyInfo, studies: &[StudyInfo]) -> (StudyInfo, Vec<String>) {
    let mut merged = main.clone();
    let mut uids = vec![main.study_uid.clone()];
    for other in studies {
        if other.study_uid != main.study_uid && same_visit(main, other) {
            merged.series.extend(other.series.iter().cloned());
            uids.push(other.study_uid.clone());
        }
    }
    (merged, uids)
}

fn same_visit(a: &StudyInfo, b: &StudyInfo) -> bool {
    let same_patient = !a.patient_id.trim().is_empty() && a.patient_id == b.patient_id;
    same_patient && (shares_frame_of_reference(a, b) || (!a.study_date.is_empty() && a.study_date == b.study_date))
}

fn shares_frame_of_reference(a: &StudyInfo, b: &StudyInfo) -> bool {
    a.series.iter().any(|s| {
        !s.frame_of_reference.is_empty() && b.series.iter().any(|t| t.frame_of_reference == s.frame_of_reference)
    })
}

/// Why `other` was joined to `main`, in words.
fn join_reason(main: &StudyInfo, other: &StudyInfo) -> String {
    if shares_frame_of_reference(main, other) {
        format!("PatientID {}, same frame of reference", other.patient_id)
    } else {
        format!("PatientID {}, same date {}", other.patient_id, other.study_date)
    }
}
