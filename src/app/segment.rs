//! The "AI segmentation" section: runs the shipped U-Net on the study in the background
//! (progress, Cancel), shows its mask filling in batch by batch of slices as the label
//! layer, and puts the finished (post-processed) mask in its place; the mask it replaces
//! is kept for one Undo, and comes back at once if the run is cancelled or fails.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use egui::Color32;

use crate::study::{next_key, take_ended, Ended, Job, Labels, Study};
use crate::volume::{Lps, Mask};

#[derive(Default)]
pub struct SegmentPanel {
    job: Option<Job<crate::segment::Segmentation>>,
    replaced: Option<Option<Labels>>,
    /// The mask so far, written by the running job, with a count of the batches in it.
    live: Option<Arc<Mutex<(Mask, u64)>>>,
    /// The live mask's count now shown as the label layer.
    shown: u64,
    pub message: Option<String>,
    pub error: Option<String>,
    /// The lesions the last run's lesion search added (not the network's): volume (mL) and
    /// centre, listed so the user can go to each and check it.
    pub searched: Vec<(f64, Lps)>,
    /// What is wrong with the last result (no liver, implausible volume, wrong side),
    /// shown as warnings beside it.
    pub concerns: Vec<String>,
}

/// Where the shipped weights are: `HEPAVIEW_MODEL`, then `models/` beside the current
/// folder, the executable (and its target/<profile>/ grand-parents), or this source tree.
pub fn model_path() -> Option<PathBuf> {
    let name = "models/unet.safetensors";
    let mut candidates: Vec<PathBuf> = std::env::var_os("HEPAVIEW_MODEL").map(PathBuf::from).into_iter().collect();
    candidates.push(PathBuf::from(name));
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            candidates.push(dir.join(name));
        }
    }
    candidates.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name));
    candidates.into_iter().find(|p| p.is_file())
}

/// The label layer's source while the U-Net is still running.
const LIVE_SOURCE: &str = "U-Net segmentation (running)";

fn is_live(study: &Study) -> bool {
    study.labels.as_ref().is_some_and(|l| l.source == std::path::Path::new(LIVE_SOURCE))
}

impl SegmentPanel {
    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    pub fn cancel(&self) {
        if let Some(j) = &self.job {
            j.cancel();
        }
    }

    /// Segments `study`; with the study's registrations for every moving phase, on those
    /// (the full registration the user looked at), else after the quick one.
    pub fn start(&mut self, study: &Study) {
        let Some(model) = model_path() else {
            self.error =
                Some("No model: models/unet.safetensors was not found (set HEPAVIEW_MODEL to its path).".into());
            return;
        };
        let (s, register) = match study.registered_study() {
            Some(s) => (s, false),
            None => (study.clone(), true),
        };
        self.error = None;
        self.searched.clear();
        self.concerns.clear();
        let Some(fixed) = study.phases.get(study.fixed_index()) else {
            self.error = Some("No image to segment.".into());
            return;
        };
        let live = Arc::new(Mutex::new((Mask::filled(fixed.volume.geometry.clone(), 0), 0u64)));
        self.live = Some(live.clone());
        self.shown = 0;
        self.job = Some(Job::spawn("Segmenting liver and tumours", move |progress| {
            let on_slices = |k0: usize, labels: ndarray::Array3<u8>| {
                if let Ok(mut l) = live.lock() {
                    let n = labels.dim().0;
                    l.0.data.slice_mut(ndarray::s![k0..k0 + n, .., ..]).assign(&labels);
                    l.1 += 1;
                }
            };
            let net = crate::segment::load_unet(&model).map_err(|e| e.to_string())?;
            let opts = crate::segment::InferOptions { register, ..Default::default() };
            crate::study::segment_phases_live(&net, &s, &opts, progress, Some(&on_slices)).map_err(|e| e.to_string())
        }));
    }

    /// Shows the live mask as the label layer when new slices came in (the first time
    /// keeping the study's own labels for Undo and for a cancelled run).
    fn show_live(&mut self, study: &mut Study) {
        let Some(live) = &self.live else { return };
        let Ok(l) = live.lock() else { return };
        if l.1 == self.shown {
            return;
        }
        self.shown = l.1;
        let mask = l.0.clone();
        drop(l);
        if !is_live(study) {
            self.replaced = Some(study.labels.take());
        }
        study.labels = Some(Labels { mask: Arc::new(mask), key: next_key(), source: PathBuf::from(LIVE_SOURCE) });
    }

    /// After a cancelled or failed run: the labels from before it, if the live mask had
    /// replaced them.
    fn restore(&mut self, study: &mut Study) {
        if is_live(study) {
            if let Some(previous) = self.replaced.take() {
                study.labels = previous;
            }
        }
    }

    pub fn poll(&mut self, study: &mut Study, ctx: &egui::Context) {
        let Some(ended) = take_ended(&mut self.job) else {
            if self.job.is_some() {
                self.show_live(study);
                ctx.request_repaint_after(std::time::Duration::from_millis(100));
            }
            return;
        };
        self.live = None;
        match ended {
            Ended::Done(crate::segment::Segmentation {
                mask,
                searched,
                check,
                tumour_stage_ran,
                confirmed,
                completed,
            }) => {
                self.concerns = check.concerns.iter().map(|c| c.to_string()).collect();
                let mut summary = summary(&mask, searched.as_ref().map_or(0, |r| r.added.len()));
                if tumour_stage_ran {
                    summary.push_str(" (tumours from the 1.5 mm tumour stage");
                    if let Some(c) = confirmed {
                        summary.push_str(&format!(
                            ", each checked by outline: {} redrawn, {} turned back into liver",
                            c.redrawn,
                            c.dropped.len()
                        ));
                        if c.surface_fluid > 0 {
                            summary.push_str(&format!(
                                ", {} fluid on the liver's surface (the gallbladder, or bowel) taken out",
                                c.surface_fluid
                            ));
                        }
                    }
                    summary.push(')');
                }
                let voxel_ml = mask.geometry.spacing_mm.iter().product::<f64>() / 1000.0;
                if let Some(c) = completed.filter(|c| c.added > 0) {
                    summary.push_str(&format!(
                        "; {:.1} mL of liver at its dome and tip completed from the slices beside them",
                        c.added as f64 * voxel_ml
                    ));
                }
                self.searched =
                    searched.into_iter().flat_map(|r| r.added).map(|(n, c)| (n as f64 * voxel_ml, c)).collect();
                if !is_live(study) {
                    self.replaced = Some(study.labels.take());
                }
                study.labels =
                    Some(Labels { mask: Arc::new(mask), key: next_key(), source: PathBuf::from("U-Net segmentation") });
                self.message = Some(format!("Segmented: {summary}. Check and correct it with the editing tools."));
            }
            Ended::Cancelled => self.restore(study),
            Ended::Failed(e) => {
                self.restore(study);
                self.error = Some(format!("Segmentation failed: {e}"));
            }
        }
    }

    /// The panel; returns a point to centre the views on when the user asks to go to a
    /// lesion the search added.
    pub fn ui(&mut self, ui: &mut egui::Ui, study: &mut Study) -> Option<Lps> {
        let mut jump = None;
        ui.heading("AI segmentation");
        if let Some(job) = &self.job {
            let (f, m) = job.progress();
            ui.add(egui::ProgressBar::new(f).show_percentage());
            ui.label(m);
            if ui.button("Cancel segmentation").clicked() {
                job.cancel();
            }
        } else {
            if ui
                .button("Segment liver and tumours")
                .on_hover_text("U-Net on this machine; replaces the label layer (Undo below)")
                .clicked()
            {
                self.start(study);
            }
            if self.replaced.is_some() && ui.button("Undo segmentation").clicked() {
                if let Some(previous) = self.replaced.take() {
                    study.labels = previous.map(|l| Labels { key: next_key(), ..l });
                }
                self.searched.clear();
                self.concerns.clear();
            }
        }
        if let Some(m) = &self.message {
            ui.label(egui::RichText::new(m).small());
        }
        for c in &self.concerns {
            ui.colored_label(Color32::from_rgb(255, 190, 60), format!("Warning: {c}"));
        }
        for &(ml, c) in &self.searched {
            if ui.button(searched_label(ml, c)).on_hover_text("found by the lesion search, not the network: a round patch unlike the liver around it; go to it and check").clicked() {
                jump = Some(c);
            }
        }
        if let Some(e) = &self.error {
            ui.colored_label(Color32::LIGHT_RED, e);
        }
        jump
    }
}

/// The button of a lesion the search added.
fn searched_label(ml: f64, c: Lps) -> String {
    format!("Check: {ml:.1} mL at ({:.0}, {:.0}, {:.0}) mm, from the lesion search", c[0], c[1], c[2])
}

/// What a radiologist reads first: the liver's volume (tumours included, as LiTS counts
/// it) and the tumours as separate lesions, in mL; and how many of those the lesion
/// search added (`searched`), to be looked at first: the network did not call them.
fn summary(mask: &Mask, searched: usize) -> String {
    let ml = mask.geometry.spacing_mm.iter().product::<f64>() / 1000.0;
    let liver = mask.data.iter().filter(|&&v| v > 0).count() as f64 * ml;
    let (lesions, _) = crate::volume::region::connected_components(mask, 2, 1);
    let tumour: usize = lesions.iter().map(|c| c.voxels.len()).sum();
    let counted = match lesions.len() {
        0 => format!("liver {liver:.0} mL, no tumour"),
        1 => format!("liver {liver:.0} mL, 1 tumour ({:.1} mL)", tumour as f64 * ml),
        n => format!("liver {liver:.0} mL, {n} tumours ({:.1} mL in all)", tumour as f64 * ml),
    };
    match searched {
        0 => counted,
        1 => format!("{counted}; 1 of them found by the lesion search, not the network"),
        n => format!("{counted}; {n} of them found by the lesion search, not the network"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phantom::PhantomOptions;

    /// The live mask replaces the label layer only when new slices came in, keeps the
    /// study's own labels for later, and a cancelled run puts them back.
    #[test]
    fn live_mask_is_shown_and_a_cancelled_run_restores_the_labels() {
        let mut study = Study::demo(&PhantomOptions::small());
        let own_key = study.labels.as_ref().expect("demo labels").key;
        let grid = study.phases[study.fixed_index()].volume.geometry.clone();
        let mut mask = Mask::filled(grid, 0);
        mask.data[[0, 0, 0]] = 1;
        let live = Arc::new(Mutex::new((mask, 1u64)));
        let mut panel = SegmentPanel { live: Some(live.clone()), ..SegmentPanel::default() };
        panel.show_live(&mut study);
        let shown = study.labels.as_ref().expect("live labels");
        assert!(is_live(&study));
        assert_eq!(shown.mask.data[[0, 0, 0]], 1);
        let key = shown.key;
        panel.show_live(&mut study);
        assert_eq!(study.labels.as_ref().unwrap().key, key, "nothing new, nothing re-uploaded");
        live.lock().unwrap().1 = 2;
        panel.show_live(&mut study);
        assert_ne!(study.labels.as_ref().unwrap().key, key, "new slices shown");
        panel.restore(&mut study);
        assert!(!is_live(&study));
        assert_eq!(study.labels.as_ref().expect("own labels back").key, own_key);
    }

    #[test]
    fn the_summary_counts_lesions_and_millilitres() {
        let g = crate::volume::Geometry::axis_aligned([10, 10, 10], [2.0, 5.0, 5.0], [0.0; 3]);
        let mut mask = Mask::filled(g, 1u8);
        assert_eq!(summary(&mask, 0), "liver 50 mL, no tumour");
        mask.data[[1, 1, 1]] = 2;
        mask.data[[1, 1, 2]] = 2;
        assert_eq!(summary(&mask, 0), "liver 50 mL, 1 tumour (0.1 mL)");
        mask.data[[8, 8, 8]] = 2;
        assert_eq!(summary(&mask, 0), "liver 50 mL, 2 tumours (0.2 mL in all)");
        assert_eq!(
            summary(&mask, 1),
            "liver 50 mL, 2 tumours (0.2 mL in all); 1 of them found by the lesion search, not the network"
        );
        assert_eq!(
            searched_label(11.62, [-80.2, -30.0, -160.4]),
            "Check: 11.6 mL at (-80, -30, -160) mm, from the lesion search"
        );
    }
}
