//! The "Clusters & lesions" section of the side panel: k-means of the liver across phases
//! (worker thread, progress, Cancel) shown as an overlay with a legend, a button per
//! cluster that turns it into a mask label, and the lesion table (click a row to go to the
//! lesion) with an Export report button. The phases come from the registration panel when
//! it has run; otherwise the job registers them itself first, because clustering or
//! comparing HU across phases that do not line up measures the breathing, not the tissue.

use std::path::PathBuf;
use std::sync::Arc;

use egui::{Color32, RichText};

use crate::cluster::ClusterReport;
use crate::lesion::{LesionOptions, LesionReport};
use crate::register;
use crate::report::{self, cluster_colour, ReportInput};
use crate::study::analysis::{self, AlignedPhase, Alignment, ClusterRecipe};
use crate::study::{next_key, take_ended, Ended, Job, Study};
use crate::volume::{Lps, Mask};

use super::edit::label_name;

/// Largest k the overlay can colour (its palette has 16 entries, 0 = none).
pub const MAX_K_SHOWN: usize = 15;

/// A finished clustering, on the label mask's grid.
pub struct ClusterLayer {
    pub mask: Arc<Mask>,
    pub key: u64,
    pub report: ClusterReport,
    /// Overlay colours, the report's ramp.
    pub palette: [[f32; 4]; 16],
}

/// Finished lesion measurements and what they were measured on (kept for the report).
pub struct LesionTable {
    pub report: LesionReport,
    pub phases: Vec<AlignedPhase>,
    pub mask: Arc<Mask>,
    pub mask_source: String,
    /// Each tumour's depth below the liver surface and distance to the vessels, as the 3D
    /// view measures them (empty when the surfaces could not be built).
    pub distances: Vec<crate::render::TumourInfo>,
}

type ClusterOutcome = (crate::cluster::Clustering, Vec<AlignedPhase>);
type LesionOutcome = (LesionReport, Vec<AlignedPhase>, Vec<crate::render::TumourInfo>);

pub struct AnalysisPanel {
    pub k: usize,
    pub margin_mm: f32,
    pub majority: bool,
    cluster_job: Option<Job<ClusterOutcome>>,
    lesion_job: Option<Job<LesionOutcome>>,
    pub clusters: Option<ClusterLayer>,
    pub show_clusters: bool,
    pub lesions: Option<LesionTable>,
    /// Mask label a cluster becomes when its button is pressed (LiTS: 1 liver, 2 tumour).
    pub target_label: u8,
    /// The label mask before the last cluster-to-label change, for Undo.
    undo_labels: Option<(Arc<Mask>, u64)>,
    pub export_dir: String,
    /// The native folder dialog for the report, while it is open.
    export_dialog: Option<super::file_dialog::Pending>,
    pub message: Option<String>,
    pub error: Option<String>,
    /// Lesion picked in the table; the viewer moves the crosshair there.
    pub selected: Option<usize>,
}

impl Default for AnalysisPanel {
    fn default() -> Self {
        AnalysisPanel {
            k: crate::cluster::DEFAULT_K,
            margin_mm: 0.0,
            majority: false,
            cluster_job: None,
            lesion_job: None,
            clusters: None,
            show_clusters: true,
            lesions: None,
            target_label: 2,
            undo_labels: None,
            export_dir: default_export_dir().display().to_string(),
            export_dialog: None,
            message: None,
            error: None,
            selected: None,
        }
    }
}

/// A new folder under the home directory (never the study's own folder, which may be
/// read-only or a PACS export the user does not want touched).
fn default_export_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    home.join("hepaview-reports").join(format!("report-{secs}"))
}

impl AnalysisPanel {
    pub fn cancel(&self) {
        if let Some(j) = &self.cluster_job {
            j.cancel();
        }
        if let Some(j) = &self.lesion_job {
            j.cancel();
        }
    }

    pub fn is_running(&self) -> bool {
        self.cluster_job.is_some() || self.lesion_job.is_some()
    }

    /// What the jobs work on: a snapshot of the study (registered phases when available),
    /// how to align it, and the label mask.
    fn inputs(&self, study: &Study) -> Option<(Study, Alignment, Arc<Mask>)> {
        let labels = study.labels.as_ref()?;
        let (s, alignment) = match study.registered_study() {
            Some(s) => (s, Alignment::Resample),
            None if study.phases.len() > 1 => (study.clone(), Alignment::Register(register::Params::default())),
            None => (study.clone(), Alignment::Resample),
        };
        Some((s, alignment, Arc::clone(&labels.mask)))
    }

    pub fn start_clustering(&mut self, study: &Study) {
        let Some((s, alignment, mask)) = self.inputs(study) else { return };
        let recipe = ClusterRecipe {
            k: self.k.clamp(2, MAX_K_SHOWN),
            margin_mm: self.margin_mm as f64,
            majority_iterations: if self.majority { 2 } else { 0 },
            ..Default::default()
        };
        self.error = None;
        self.cluster_job = Some(Job::spawn(format!("k-means, k = {}", recipe.k), move |progress| {
            let align = |f: f32, m: &str| progress(0.8 * f, m);
            let phases =
                analysis::align_phases(&s, &mask.geometry, &alignment, None, &align).map_err(|e| e.to_string())?;
            let fit = |f: f32, m: &str| progress(0.8 + 0.2 * f, &format!("k-means: {m}"));
            let c = analysis::cluster_phases(&phases, &mask, &recipe, &fit).map_err(|e| e.to_string())?;
            Ok((c, phases))
        }));
    }

    pub fn start_lesions(&mut self, study: &Study) {
        let Some((s, alignment, mask)) = self.inputs(study) else { return };
        self.error = None;
        self.lesion_job = Some(Job::spawn("Measuring lesions", move |progress| {
            let align = |f: f32, m: &str| progress(0.9 * f, m);
            let phases =
                analysis::align_phases(&s, &mask.geometry, &alignment, None, &align).map_err(|e| e.to_string())?;
            progress(0.9, "measuring");
            let r = analysis::measure_lesions(&phases, &mask, &LesionOptions::default()).map_err(|e| e.to_string())?;
            let surfaces = |f: f32, m: &str| progress(0.95 + 0.05 * f, m);
            let distances =
                crate::render::scene::tumour_measurements(&mask, &crate::mesh::MeshOptions::default(), &surfaces)
                    .unwrap_or_default();
            Ok((r, phases, distances))
        }));
    }

    /// Polls the jobs; returns true while one runs (the caller keeps repainting).
    pub fn poll(&mut self, study: &Study, ctx: &egui::Context) {
        if let Some(ended) = take_ended(&mut self.cluster_job) {
            match ended {
                Ended::Done((c, _)) => {
                    let k = c.report.k;
                    let mut palette = [[0.0f32; 4]; 16];
                    for (l, p) in palette.iter_mut().enumerate().skip(1).take(k) {
                        let [r, g, b] = cluster_colour(l as u8, k);
                        *p = [r as f32 / 255.0, g as f32 / 255.0, b as f32 / 255.0, 1.0];
                    }
                    self.clusters =
                        Some(ClusterLayer { mask: Arc::new(c.labels), key: next_key(), report: c.report, palette });
                    self.show_clusters = true;
                }
                Ended::Cancelled => {}
                Ended::Failed(e) => self.error = Some(format!("Clustering failed: {e}")),
            }
        }
        if let Some(ended) = take_ended(&mut self.lesion_job) {
            match ended {
                Ended::Done((report, phases, distances)) => {
                    if let Some(l) = &study.labels {
                        self.lesions = Some(LesionTable {
                            report,
                            phases,
                            mask: Arc::clone(&l.mask),
                            mask_source: l.source.display().to_string(),
                            distances,
                        });
                    }
                }
                Ended::Cancelled => {}
                Ended::Failed(e) => self.error = Some(format!("Lesion measurement failed: {e}")),
            }
        }
        if self.is_running() {
            ctx.request_repaint_after(std::time::Duration::from_millis(100));
        }
    }

    /// Sets every voxel of cluster `c` to the target label in the study's mask.
    pub fn cluster_to_label(&mut self, study: &mut Study, c: u8) {
        let (Some(layer), Some(labels)) = (&self.clusters, study.labels.as_mut()) else { return };
        if layer.mask.geometry.shape != labels.mask.geometry.shape {
            self.error = Some("The clusters were made on another mask's grid; run the clustering again.".into());
            return;
        }
        self.undo_labels = Some((Arc::clone(&labels.mask), labels.key));
        let m = Arc::make_mut(&mut labels.mask);
        let mut n = 0usize;
        for (l, &k) in m.data.iter_mut().zip(layer.mask.data.iter()) {
            if k == c {
                *l = self.target_label;
                n += 1;
            }
        }
        labels.key = next_key();
        self.message = Some(format!("Cluster {c}: {n} voxels set to label {}.", self.target_label));
    }

    pub fn undo(&mut self, study: &mut Study) {
        if let (Some((mask, key)), Some(labels)) = (self.undo_labels.take(), study.labels.as_mut()) {
            labels.mask = mask;
            labels.key = key;
            self.message = Some("Label change undone.".into());
        }
    }

    /// Sets the report folder to one the user chose (the native folder dialog's answer).
    /// Export then writes into it, refusing before writing anything if a report is
    /// already there.
    pub fn set_export_dir(&mut self, dir: &std::path::Path) {
        self.export_dir = dir.display().to_string();
        self.error = None;
    }

    /// Writes the HTML/CSV/JSON report of the last lesion measurement.
    pub fn export(&mut self, study: &Study) {
        let Some(t) = &self.lesions else { return };
        let input = ReportInput {
            title: study.title.clone(),
            phases: &t.phases,
            mask: &t.mask,
            mask_source: t.mask_source.clone(),
            lesions: &t.report,
            clusters: self.clusters.as_ref().map(|c| &c.report),
            notes: vec![if t.phases.iter().any(|p| p.registered) || t.phases.len() < 2 {
                "Phases registered onto the fixed phase before measuring.".into()
            } else {
                "Phases resampled in world coordinates.".into()
            }],
        };
        match report::write_report(&input, std::path::Path::new(&self.export_dir)) {
            Ok(files) => {
                self.message = Some(format!("Report written: {}", files.html.display()));
                self.export_dir = default_export_dir().display().to_string();
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    /// Draws the section; returns a point to move the crosshair to (a lesion picked).
    pub fn ui(&mut self, ui: &mut egui::Ui, study: &mut Study) -> Option<Lps> {
        ui.heading("Clusters & lesions");
        if study.labels.is_none() {
            ui.label("Open a label mask with the study (liver 1, tumour 2) to cluster the liver and measure lesions.");
            return None;
        }
        let mut jump = None;
        if study.registrations.is_empty() && study.phases.len() > 1 {
            ui.label(RichText::new("Phases not registered yet: these jobs register them first.").small());
        }
        // clustering
        if let Some(job) = &self.cluster_job {
            ui.label(&job.title);
            let (f, m) = job.progress();
            ui.add(egui::ProgressBar::new(f).show_percentage());
            ui.label(m);
            if ui.button("Cancel clustering").clicked() {
                job.cancel();
            }
        } else {
            ui.spacing_mut().slider_width = 110.0;
            ui.add(egui::Slider::new(&mut self.k, 2..=MAX_K_SHOWN).text("k"));
            ui.add(egui::Slider::new(&mut self.margin_mm, 0.0..=20.0).text("margin mm"))
                .on_hover_text("grow the liver region by this much");
            ui.checkbox(&mut self.majority, "smooth clusters").on_hover_text("two passes of a 3x3x3 majority filter");
            if ui
                .button("Cluster")
                .on_hover_text("k-means of liver + tumour voxels on their HU in every phase")
                .clicked()
            {
                self.start_clustering(study);
            }
        }
        if let Some(layer) = &self.clusters {
            ui.checkbox(&mut self.show_clusters, "Show clusters (instead of labels)");
            let mut to_label = None;
            egui::Grid::new("cluster_legend").striped(true).show(ui, |ui| {
                ui.label("");
                for n in &layer.report.feature_names {
                    ui.label(RichText::new(short_name(n)).small());
                }
                ui.label(RichText::new("voxels").small());
                ui.label("");
                ui.end_row();
                for s in &layer.report.clusters {
                    let [r, g, b] = cluster_colour(s.label, layer.report.k);
                    ui.horizontal(|ui| {
                        let (rect, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
                        ui.painter().rect_filled(rect, 2.0, Color32::from_rgb(r, g, b));
                        ui.label(s.label.to_string());
                    });
                    for m in &s.mean {
                        ui.label(format!("{m:.0}"));
                    }
                    ui.label(s.voxel_count.to_string());
                    if ui
                        .small_button("to label")
                        .on_hover_text("set these voxels to the target label in the mask")
                        .clicked()
                    {
                        to_label = Some(s.label);
                    }
                    ui.end_row();
                }
            });
            ui.horizontal(|ui| {
                egui::ComboBox::new("target_label", "target label")
                    .selected_text(label_name(self.target_label))
                    .show_ui(ui, |ui| {
                        for l in 1..=4u8 {
                            ui.selectable_value(&mut self.target_label, l, label_name(l));
                        }
                    });
                if ui.add_enabled(self.undo_labels.is_some(), egui::Button::new("Undo")).clicked() {
                    self.undo(study);
                }
            });
            if let Some(c) = to_label {
                self.cluster_to_label(study, c);
            }
        }
        ui.separator();
        // lesions
        if let Some(job) = &self.lesion_job {
            let (f, m) = job.progress();
            ui.add(egui::ProgressBar::new(f).show_percentage());
            ui.label(m);
            if ui.button("Cancel").clicked() {
                job.cancel();
            }
        } else if ui.button(if self.lesions.is_some() { "Measure lesions again" } else { "Measure lesions" }).clicked()
        {
            self.start_lesions(study);
        }
        if let Some(t) = &self.lesions {
            // depth below the liver surface (and gap to the vessels), as the 3D view's labels
            let distance = |l: &crate::lesion::Lesion| {
                t.distances.iter().find(|d| d.number == l.id && (d.volume_ml - l.volume_ml).abs() < 1e-6)
            };
            let vessels = t.distances.iter().any(|d| d.vessel_mm.is_some());
            let mm = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
            egui::Grid::new("lesion_table").striped(true).show(ui, |ui| {
                let depth_tip = "shortest distance from the tumour to the liver's outer surface";
                let vessel_tip = "shortest distance from the tumour to the vessel label's surface";
                for (h, tip) in [
                    ("#", None),
                    ("mL", None),
                    ("RECIST mm", None),
                    ("depth mm", Some(depth_tip)),
                    ("vessel mm", Some(vessel_tip)),
                    ("hint", None),
                ] {
                    if h == "vessel mm" && !vessels {
                        continue;
                    }
                    let r = ui.label(RichText::new(h).small().strong());
                    if let Some(tip) = tip {
                        r.on_hover_text(tip);
                    }
                }
                ui.end_row();
                for l in &t.report.lesions {
                    if ui
                        .selectable_label(self.selected == Some(l.id), format!("#{}", l.id))
                        .on_hover_text("go to this lesion")
                        .clicked()
                    {
                        self.selected = Some(l.id);
                        jump = Some(l.centroid_mm);
                    }
                    ui.label(format!("{:.2}", l.volume_ml));
                    ui.label(format!(
                        "{:.0} x {:.0}{}",
                        l.recist.long_axis_mm,
                        l.recist.short_axis_mm,
                        if l.touches_edge { " (edge)" } else { "" }
                    ));
                    let d = distance(l);
                    ui.label(mm(d.and_then(|d| d.depth_mm)));
                    if vessels {
                        ui.label(mm(d.and_then(|d| d.vessel_mm)));
                    }
                    ui.label(RichText::new(l.pattern.summary.split(':').next().unwrap_or("")).small())
                        .on_hover_text(l.pattern.findings.join("\n"));
                    ui.end_row();
                }
            });
            if t.report.lesions.is_empty() {
                ui.label("No tumour (label 2) in the mask.");
            }
            ui.label(RichText::new(crate::lesion::HINT_DISCLAIMER).small().italics());
            if let Some(pending) = &self.export_dialog {
                match pending.poll() {
                    super::file_dialog::Answer::Waiting => {
                        ui.ctx().request_repaint_after(std::time::Duration::from_millis(100))
                    }
                    super::file_dialog::Answer::Nothing => {
                        self.export_dialog = None;
                        self.message = Some(super::file_dialog::NOTHING_CHOSEN.into());
                    }
                    super::file_dialog::Answer::Chosen(paths) => {
                        self.export_dialog = None;
                        if let Some(p) = paths.first() {
                            self.set_export_dir(p);
                        }
                    }
                }
            }
            let folder = ui.label("report folder");
            ui.horizontal(|ui| {
                ui.text_edit_singleline(&mut self.export_dir).labelled_by(folder.id);
                let choose = ui
                    .add_enabled(self.export_dialog.is_none(), egui::Button::new("Choose…"))
                    .on_hover_text("Choose the folder in the desktop's folder dialog");
                if choose.clicked() {
                    // start where the typed folder (or the nearest existing parent) is
                    let typed = PathBuf::from(self.export_dir.trim());
                    let start = typed.ancestors().find(|p| p.is_dir()).map(std::path::Path::to_path_buf);
                    self.export_dialog =
                        Some(super::file_dialog::Pending::ask(super::file_dialog::Purpose::ReportFolder, start, None));
                }
            });
            if ui
                .button("Export report")
                .on_hover_text("HTML page with key images and curves, CSV and JSON, in this folder")
                .clicked()
            {
                self.export(study);
            }
        }
        if let Some(m) = &self.message {
            ui.label(RichText::new(m).small());
        }
        if let Some(e) = &self.error {
            ui.colored_label(Color32::LIGHT_RED, e);
        }
        jump
    }
}

fn short_name(n: &str) -> &str {
    match n {
        "arterial" => "AP HU",
        "portal venous" => "PV HU",
        "delayed" => "DL HU",
        "non-contrast" => "NC HU",
        other => other,
    }
}
