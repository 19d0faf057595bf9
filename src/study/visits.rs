//! The follow-up visits shown in the open study, as values the study holds
//! ([`Study::visits`]): each [`Visit`] knows its label, the study as opened (on its own
//! grids), the alignment onto the baseline (automatic, then nudged by hand), the keys of its
//! phases in the study and the mask found for it. The viewer asks the study which visit a
//! phase belongs to by key ([`Study::visit_of`]), instead of reading phase descriptions; a
//! description is read only once, when a study arrives with follow-up phases but no visit
//! for them ([`Study::adopt_orphan_visits`]). Opening, nudging (resampling the phases
//! again through the new transform, with the residual NCC) and the inputs of a comparison
//! are here; the panel (`app::follow_up`) runs them on worker threads and only couples
//! widgets to them.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use super::analysis;
use super::compare::{shown_visit, MaskPlan, VisitInput};
use crate::follow_up::{parse_visit_name, visit_description};
use crate::io::phase::PhaseCall;
use crate::register::affine::{ncc_at, resample_affine, AffineParams, AffineTransform};
use crate::study::{next_key, PhaseImage, Progress, Study};
use crate::volume::{CtVolume, Lps, Mask};

/// Pyramid spacing (mm) of the residual NCC shown for a visit's alignment.
const NCC_SPACING_MM: f64 = 4.0;

/// A follow-up visit added to the study by [`analysis::add_follow_up`], as the CLI hands it
/// to the viewer: the study as opened and the transform it was resampled through.
pub struct VisitSource {
    pub follow: Study,
    pub label: String,
    pub transform: AffineTransform,
}

/// One follow-up visit shown in the study.
#[derive(Clone)]
pub struct Visit {
    pub label: String,
    /// The visit as opened, on its own grids; for a visit found already resampled in the
    /// study (added without its source), those resampled phases, with `auto` the identity.
    pub source: Study,
    /// Baseline world point → source world point, as the automatic alignment found it.
    pub auto: AffineTransform,
    /// Shift of the follow-up images by hand (baseline LPS mm) now applied.
    pub nudge_mm: Lps,
    /// Turn of the follow-up images by hand about the patient's head-foot axis through
    /// `pivot_mm` (degrees, clockwise on the axial view) now applied.
    pub nudge_deg: f64,
    /// The centre of the baseline's reference phase: what a turn by hand turns about.
    pub pivot_mm: Lps,
    /// Residual NCC (body voxels) of the automatic alignment and of the one applied now.
    pub ncc_auto: Option<f64>,
    pub ncc_now: Option<f64>,
    /// Keys of this visit's phases in the study, in `source.phases` order.
    pub keys: Vec<u64>,
    /// The mask on the baseline mask's grid and where it came from, kept between runs until
    /// the alignment changes.
    pub mask: Option<(Arc<Mask>, String)>,
}

/// A nudge computed off the UI thread ([`Visit::nudge_work`]), to take in with
/// [`Visit::take_nudge`].
pub struct NudgeOutcome {
    pub label: String,
    nudge_mm: Lps,
    nudge_deg: f64,
    /// New images in `source.phases` order (`None`: only the NCC was computed).
    volumes: Option<Vec<Arc<CtVolume>>>,
    ncc_auto: Option<f64>,
    ncc_now: Option<f64>,
}

/// A follow-up opened and aligned off the UI thread ([`open_work`]), to take in with
/// [`OpenOutcome::add_to`].
pub struct OpenOutcome {
    phases: Vec<PhaseImage>,
    keys_before: Vec<u64>,
    follow: Study,
    pub label: String,
    pub transform: AffineTransform,
}

/// The last word of a title that reads as a date (YYYYMMDD).
fn date_in(title: &str) -> Option<String> {
    title.split_whitespace().rev().find(|w| w.len() == 8 && w.chars().all(|c| c.is_ascii_digit())).map(str::to_string)
}

/// How the baseline is named in a comparison: "baseline DATE" when its title has a date.
pub fn baseline_label(study: &Study) -> String {
    date_in(&study.title).map(|d| format!("baseline {d}")).unwrap_or_else(|| "baseline".into())
}

impl Visit {
    /// A visit on the baseline grid with the automatic alignment `auto` and no nudge.
    fn new(label: String, source: Study, auto: AffineTransform, pivot_mm: Lps, keys: Vec<u64>) -> Visit {
        Visit {
            label,
            source,
            auto,
            nudge_mm: [0.0; 3],
            nudge_deg: 0.0,
            pivot_mm,
            ncc_auto: None,
            ncc_now: None,
            keys,
            mask: None,
        }
    }

    /// The visit `source` already added to `study` by [`analysis::add_follow_up`], its
    /// phases found by the names that gave them; `None` when some are missing.
    pub fn from_source(study: &Study, source: VisitSource) -> Option<Visit> {
        // the shown phases in the order of the source's phases (names carry the phase)
        let keys: Vec<u64> = source
            .follow
            .phases
            .iter()
            .filter_map(|sp| {
                let want = visit_description(&source.label, sp.phase(), &sp.description);
                study.phases.iter().find(|p| p.description == want).map(|p| p.key)
            })
            .collect();
        if keys.len() != source.follow.phases.len() {
            return None;
        }
        let pivot = study.phases[study.fixed_index()].volume.geometry.centre_mm();
        Some(Visit::new(source.label, source.follow, source.transform, pivot, keys))
    }

    /// Measures the residual NCC of the automatic alignment (as applied now: no nudge yet)
    /// against the baseline's fixed phase `fixed`.
    pub fn measure_auto_ncc(&mut self, fixed: &CtVolume) {
        let ncc = ncc_at(
            fixed,
            &self.source.phases[self.source.fixed_index()].volume,
            &self.auto,
            NCC_SPACING_MM,
            AffineParams::default().body_threshold_hu,
        );
        (self.ncc_auto, self.ncc_now) = (ncc, ncc);
    }

    /// The transform the shown images are resampled through now.
    pub fn transform(&self) -> AffineTransform {
        analysis::nudge_visit_transform(&self.auto, self.nudge_mm, self.nudge_deg, self.pivot_mm)
    }

    /// Whether the phase with `key` in the study is one of this visit's.
    pub fn owns(&self, key: u64) -> bool {
        self.keys.contains(&key)
    }

    /// Where a comparison takes this visit's mask from: the one found last time, the
    /// NIfTI `mask_path` names (on the visit's own grid), the visit's own labels, else the
    /// U-Net.
    pub fn mask_plan(&self, mask_path: &str) -> MaskPlan {
        if let Some((m, note)) = &self.mask {
            MaskPlan::Cached(Arc::clone(m), note.clone())
        } else if !mask_path.trim().is_empty() {
            MaskPlan::File(PathBuf::from(mask_path.trim()), self.transform())
        } else if let Some(l) = &self.source.labels {
            MaskPlan::Own(Arc::clone(&l.mask), self.transform())
        } else {
            MaskPlan::UNet
        }
    }

    /// This visit as a comparison takes it: its phases as shown, and where its mask comes
    /// from ([`Visit::mask_plan`]).
    pub fn compare_input(&self, study: &Study, mask_path: &str) -> VisitInput {
        VisitInput { label: self.label.clone(), study: self.shown(study), plan: self.mask_plan(mask_path) }
    }

    /// A study of this visit's phases as shown (on the baseline's grid), each named the
    /// phase it was in the visit, so that registration and measurement see them.
    pub fn shown(&self, study: &Study) -> Study {
        let phases: Vec<PhaseImage> = self
            .keys
            .iter()
            .zip(&self.source.phases)
            .filter_map(|(k, sp)| {
                let p = study.phases.iter().find(|p| p.key == *k)?;
                let reason = format!("follow-up {}", self.label);
                Some(PhaseImage { call: PhaseCall { phase: sp.phase(), confidence: 1.0, reason }, ..p.clone() })
            })
            .collect();
        Study::of_phases(self.label.clone(), phases)
    }

    /// The work of resampling this visit's phases through the automatic alignment nudged
    /// by `nudge_mm` and `nudge_deg` (or, with `ncc_only`, only measuring the residual NCC
    /// of the alignment applied now), to run on a worker thread.
    pub fn nudge_work(
        &self,
        study: &Study,
        nudge_mm: Lps,
        nudge_deg: f64,
        ncc_only: bool,
    ) -> impl FnOnce(Progress) -> Result<NudgeOutcome, String> + Send + 'static {
        let fixed = Arc::clone(&study.phases[study.fixed_index()].volume);
        let grid = fixed.geometry.clone();
        let sources: Vec<Arc<CtVolume>> = self.source.phases.iter().map(|p| Arc::clone(&p.volume)).collect();
        let reference = Arc::clone(&self.source.phases[self.source.fixed_index()].volume);
        let (auto, label) = (self.auto, self.label.clone());
        let (known_auto, pivot) = (self.ncc_auto, self.pivot_mm);
        move |progress| {
            let t = analysis::nudge_visit_transform(&auto, nudge_mm, nudge_deg, pivot);
            let thr = AffineParams::default().body_threshold_hu;
            let ncc_auto = known_auto.or_else(|| ncc_at(&fixed, &reference, &auto, NCC_SPACING_MM, thr));
            let ncc_now = if nudge_mm == [0.0; 3] && nudge_deg == 0.0 {
                ncc_auto
            } else {
                ncc_at(&fixed, &reference, &t, NCC_SPACING_MM, thr)
            };
            let volumes = if ncc_only {
                None
            } else {
                let mut out = Vec::new();
                for (n, s) in sources.iter().enumerate() {
                    if !progress(n as f32 / sources.len() as f32, "resampling the follow-up") {
                        return Err("cancelled".into());
                    }
                    out.push(Arc::new(resample_affine(s, &grid, &t)));
                }
                Some(out)
            };
            Ok(NudgeOutcome { label, nudge_mm, nudge_deg, volumes, ncc_auto, ncc_now })
        }
    }
}

impl Study {
    /// The visit the phase with `key` belongs to; `None` for a baseline phase.
    pub fn visit_of(&self, key: u64) -> Option<&Visit> {
        self.visits.iter().find(|v| v.owns(key))
    }

    /// The baseline visit: the study without the follow-up visits and their phases.
    pub fn baseline(&self) -> Study {
        let mut s = self.clone();
        s.phases.retain(|p| self.visit_of(p.key).is_none());
        s.visits.clear();
        s
    }

    /// Records the visit `source` already added by [`analysis::add_follow_up`] (its phases
    /// found by the names that gave them), replacing one of the same label; gives back the
    /// label when its phases are not all in the study.
    pub fn adopt_visit(&mut self, source: VisitSource) -> Result<(), String> {
        let label = source.label.clone();
        let visit = Visit::from_source(self, source).ok_or(label)?;
        self.visits.retain(|v| v.label != visit.label);
        self.visits.push(visit);
        Ok(())
    }

    /// Follow-up phases in the study that no visit owns (added without their source): made
    /// visits already on the baseline grid, so they can be compared and nudged too; visits
    /// whose phases left the study are dropped. The one place a visit is found from its
    /// phases' descriptions.
    pub fn adopt_orphan_visits(&mut self) {
        let owned: HashSet<u64> = self.visits.iter().flat_map(|v| v.keys.iter().copied()).collect();
        let mut found: Vec<(String, Vec<u64>)> = Vec::new();
        for p in self.phases.iter().filter(|p| !owned.contains(&p.key)) {
            let Some(label) = parse_visit_name(&p.description).map(|n| n.label) else { continue };
            match found.iter_mut().find(|(l, _)| l == label) {
                Some((_, keys)) => keys.push(p.key),
                None => found.push((label.to_string(), vec![p.key])),
            }
        }
        for (label, keys) in found {
            let source = shown_visit(self, &keys, &label);
            let keys = source.phases.iter().map(|p| p.key).collect();
            let centre = self.phases[self.fixed_index()].volume.geometry.centre_mm();
            self.visits.retain(|v| v.label != label);
            self.visits.push(Visit::new(label, source, AffineTransform::identity(centre), centre, keys));
        }
        // a visit whose phases left the study (another study opened) is dropped
        let phases = &self.phases;
        self.visits.retain(|v| v.keys.iter().all(|k| phases.iter().any(|p| p.key == *k)));
    }

    /// Takes in a finished nudge of the visit it names: the residual NCC, and when it
    /// resampled the images, those images (under new keys) and the nudge applied; the mask
    /// found for the old alignment is dropped. Returns whether the images changed.
    pub fn take_nudge(&mut self, o: NudgeOutcome) -> bool {
        let Some(v) = self.visits.iter_mut().find(|v| v.label == o.label) else { return false };
        (v.ncc_auto, v.ncc_now) = (o.ncc_auto, o.ncc_now);
        let Some(volumes) = o.volumes else { return false };
        for (key, vol) in v.keys.iter_mut().zip(volumes) {
            if let Some(p) = self.phases.iter_mut().find(|p| p.key == *key) {
                p.volume = vol;
                p.key = next_key();
                *key = p.key;
            }
        }
        v.nudge_mm = o.nudge_mm;
        v.nudge_deg = o.nudge_deg;
        v.mask = None;
        true
    }
}

/// The work of opening the follow-up study at `paths` and aligning it onto `base` (to run
/// on a worker thread). Its label is `typed`, else the date in its title, else
/// "visit {n + 1}".
pub fn open_work(
    paths: Vec<PathBuf>,
    typed: String,
    n: usize,
    base: Study,
) -> impl FnOnce(Progress) -> Result<OpenOutcome, String> + Send + 'static {
    move |progress| {
        let opening = |f: f32, m: &str| progress(0.3 * f, &format!("opening: {m}"));
        let follow = Study::open_with_progress(&paths, &opening).map_err(|e| e.to_string())?;
        let label =
            if typed.is_empty() { date_in(&follow.title).unwrap_or_else(|| format!("visit {}", n + 1)) } else { typed };
        let mut s = base.clone();
        let aligning = |f: f32, m: &str| progress(0.3 + 0.7 * f, m);
        let transform = analysis::add_follow_up(&mut s, &follow, &label, &aligning).map_err(|e| e.to_string())?;
        let keys_before = base.phases.iter().map(|p| p.key).collect();
        Ok(OpenOutcome { phases: s.phases, keys_before, follow, label, transform })
    }
}

impl OpenOutcome {
    /// Puts the opened visit's phases into `study` (at the end when the study changed
    /// meanwhile) and returns the visit's source, to make it a [`Visit`].
    pub fn add_to(self, study: &mut Study) -> VisitSource {
        let new: Vec<PhaseImage> = self.phases.iter().filter(|p| !self.keys_before.contains(&p.key)).cloned().collect();
        if study.phases.iter().map(|p| p.key).eq(self.keys_before.iter().copied()) {
            study.phases = self.phases;
        } else {
            // the study changed meanwhile: the new phases go at the end
            study.phases.extend(new);
        }
        VisitSource { follow: self.follow, label: self.label, transform: self.transform }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::phase::Phase;

    /// A follow-up phase that arrives in a study without its visit (named as
    /// `add_follow_up` names it) becomes a visit the study finds by key; the baseline
    /// leaves it out, and the visit's phases are named as the phase they were.
    #[test]
    fn a_follow_up_phase_without_its_visit_becomes_one() {
        let mut study = Study::demo(&crate::phantom::PhantomOptions::small());
        let n = study.phases.len();
        let mut p = study.phases[0].clone();
        p.description = visit_description("20260316", Phase::Arterial, "ART 1.25mm");
        p.call.phase = Phase::Unknown;
        p.key = next_key();
        let key = p.key;
        study.phases.push(p);
        assert!(study.visit_of(key).is_none(), "no visit yet");
        study.adopt_orphan_visits();
        let v = study.visit_of(key).expect("adopted");
        assert_eq!((v.label.as_str(), v.keys.as_slice()), ("20260316", [key].as_slice()));
        assert!(study.visit_of(study.phases[0].key).is_none(), "a baseline phase is no visit's");
        let shown = v.shown(&study);
        assert_eq!(shown.phases.len(), 1);
        assert_eq!(shown.phases[0].phase(), Phase::Arterial);
        let base = study.baseline();
        assert_eq!((base.phases.len(), base.visits.len()), (n, 0));
        // adopting again finds nothing new; a visit whose phases left is dropped
        study.adopt_orphan_visits();
        assert_eq!(study.visits.len(), 1);
        study.phases.truncate(n);
        study.adopt_orphan_visits();
        assert!(study.visits.is_empty());
    }
}
