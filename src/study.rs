//! The document the app and the CLI work on: the phases of one study (each a CT volume
//! with its detected phase and why), the label mask if any, and what went wrong while
//! loading. Opening goes through `io`; nothing here draws.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::io::dicom::{self, DicomError};
use crate::io::nifti::{self, NiftiError};
use crate::io::phase::{detect_study_phases, phase_from_description, Phase, PhaseCall};
use crate::io::Warning;
use crate::phantom::{self, PhantomOptions};
use crate::volume::{CtVolume, Mask};

/// A fresh key for data uploaded to the GPU: new data, new key.
pub fn next_key() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

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
}

#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error(transparent)]
    Dicom(#[from] DicomError),
    #[error(transparent)]
    Nifti(#[from] NiftiError),
    #[error("{path}: no CT volume found to open; `hepaview info {path}` lists what is there")]
    NothingToOpen { path: PathBuf },
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
        let mut s = Study {
            title: "Demo: procedural tri-phase liver (HCC, hemangioma, cyst, metastasis)".into(),
            phases,
            labels: Some(Labels { mask: Arc::new(p.labels), key: next_key(), source: PathBuf::from("demo") }),
            warnings: Vec::new(),
        };
        s.sort_phases();
        s
    }

    /// Opens a DICOM folder (its largest multi-series CT study) or NIfTI files (each an
    /// image phase named from its file name, or a label mask when named like one).
    pub fn open(paths: &[PathBuf]) -> Result<Study, StudyError> {
        let first = paths.first().cloned().unwrap_or_default();
        if !paths.is_empty() && paths.iter().all(|p| is_nifti(p)) {
            return Self::open_nifti(paths);
        }
        Self::open_dicom(&first)
    }

    fn open_dicom(path: &Path) -> Result<Study, StudyError> {
        let scan = dicom::scan(path, &dicom::no_progress)?;
        let mut warnings = scan.warnings.clone();
        // The study with most CT series is the multi-phase one a user means to read.
        let study = scan
            .studies
            .iter()
            .max_by_key(|s| (s.series.iter().filter(|x| x.modality == "CT" || x.modality.is_empty()).count(), s.series.len()))
            .ok_or_else(|| StudyError::NothingToOpen { path: path.to_path_buf() })?;
        if scan.studies.len() > 1 {
            warnings.push(Warning::new(
                path,
                format!("{} studies in this folder; showing {} ({})", scan.studies.len(), study.patient_name, study.study_date),
                "open the other study's folder on its own to see it",
            ));
        }
        let calls = detect_study_phases(study);
        let mut phases = Vec::new();
        for (s, call) in study.series.iter().zip(calls) {
            if s.geometry.shape[0] < 2 {
                warnings.push(Warning::new(&s.frames[0].path, format!("series {:?} has a single slice", s.description), "not shown as a phase"));
                continue;
            }
            match dicom::load_series(s, &dicom::no_progress) {
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
                Err(e) => warnings.push(Warning::new(&s.frames[0].path, format!("series {:?} not loaded: {e}", s.description), "")),
            }
        }
        if phases.is_empty() {
            return Err(StudyError::NothingToOpen { path: path.to_path_buf() });
        }
        let title = format!("{} {} {}", study.patient_name, study.study_date, study.description).trim().to_string();
        let mut s = Study { title, phases, labels: None, warnings };
        s.sort_phases();
        Ok(s)
    }

    fn open_nifti(paths: &[PathBuf]) -> Result<Study, StudyError> {
        let mut phases = Vec::new();
        let mut labels = None;
        let mut warnings = Vec::new();
        for p in paths {
            if looks_like_mask(p) && labels.is_none() {
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
                None => PhaseCall { phase: Phase::Unknown, confidence: 0.0, reason: "file name names no phase; set it in the study panel".into() },
            };
            phases.push(PhaseImage { call, description: name, source: p.clone(), volume: Arc::new(vol), key: next_key() });
        }
        if phases.is_empty() {
            return Err(StudyError::NothingToOpen { path: paths.first().cloned().unwrap_or_default() });
        }
        let title = phases.iter().map(|p| p.description.as_str()).collect::<Vec<_>>().join(", ");
        let mut s = Study { title, phases, labels, warnings };
        s.sort_phases();
        Ok(s)
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
    /// first phase.
    pub fn fixed_index(&self) -> usize {
        self.phases.iter().position(|p| p.phase() == Phase::PortalVenous).unwrap_or(0)
    }
}
