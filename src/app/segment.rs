//! The "AI segmentation" section: runs the shipped U-Net on the study in the background
//! (progress, Cancel) and puts its liver + tumour mask in as the label layer; the mask it
//! replaces is kept for one Undo.

use std::path::PathBuf;
use std::sync::Arc;

use egui::Color32;

use crate::study::{next_key, take_ended, Ended, Job, Labels, Study};
use crate::volume::Mask;

#[derive(Default)]
pub struct SegmentPanel {
    job: Option<Job<Mask>>,
    replaced: Option<Option<Labels>>,
    pub message: Option<String>,
    pub error: Option<String>,
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

impl SegmentPanel {
    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    pub fn cancel(&self) {
        if let Some(j) = &self.job {
            j.cancel();
        }
    }

    pub fn start(&mut self, study: &Study) {
        let Some(model) = model_path() else {
            self.error = Some("No model: models/unet.safetensors was not found (set HEPAVIEW_MODEL to its path).".into());
            return;
        };
        let s = study.clone();
        self.error = None;
        self.job = Some(Job::spawn("Segmenting liver and tumours", move |progress| crate::segment::segment_study(&s, &model, progress).map_err(|e| e.to_string())));
    }

    pub fn poll(&mut self, study: &mut Study, ctx: &egui::Context) {
        let Some(ended) = take_ended(&mut self.job) else {
            if self.job.is_some() {
                ctx.request_repaint_after(std::time::Duration::from_millis(100));
            }
            return;
        };
        match ended {
            Ended::Done(mask) => {
                let liver = mask.data.iter().filter(|&&v| v == 1).count();
                let tumour = mask.data.iter().filter(|&&v| v == 2).count();
                self.replaced = Some(study.labels.take());
                study.labels = Some(Labels { mask: Arc::new(mask), key: next_key(), source: PathBuf::from("U-Net segmentation") });
                self.message = Some(format!("Segmented: {liver} liver and {tumour} tumour voxels. Check and correct it with the editing tools."));
            }
            Ended::Cancelled => {}
            Ended::Failed(e) => self.error = Some(format!("Segmentation failed: {e}")),
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, study: &mut Study) {
        ui.heading("AI segmentation");
        if let Some(job) = &self.job {
            let (f, m) = job.progress();
            ui.add(egui::ProgressBar::new(f).show_percentage());
            ui.label(m);
            if ui.button("Cancel segmentation").clicked() {
                job.cancel();
            }
        } else {
            if ui.button("Segment liver and tumours").on_hover_text("U-Net on this machine; replaces the label layer (Undo below)").clicked() {
                self.start(study);
            }
            if self.replaced.is_some() && ui.button("Undo segmentation").clicked() {
                if let Some(previous) = self.replaced.take() {
                    study.labels = previous.map(|l| Labels { key: next_key(), ..l });
                }
            }
        }
        if let Some(m) = &self.message {
            ui.label(egui::RichText::new(m).small());
        }
        if let Some(e) = &self.error {
            ui.colored_label(Color32::LIGHT_RED, e);
        }
    }
}
