//! The reading part of the Follow-up section, drawn once visits are compared: the lesion
//! table across time points, each visit's assessment (categories as computed and as read,
//! re-pairing and splitting lesions by hand), the timeline plots and the report button.
//! What it shows and changes is `study::reading::Comparison`'s.

use egui::{Color32, RichText, Stroke};

use super::FollowUpPanel;
use crate::follow_up::response::{self, Category};
use crate::study::Study;
use crate::volume::Lps;

fn category_name(c: Category) -> &'static str {
    match c {
        Category::CR => "CR",
        Category::PR => "PR",
        Category::SD => "SD",
        Category::PD => "PD",
    }
}

impl FollowUpPanel {
    pub(super) fn table_ui(&mut self, ui: &mut egui::Ui) -> Option<Lps> {
        let c = self.comparison.as_ref()?;
        let rows = c.rows();
        let tps = c.time_points();
        let mut jump = None;
        // one column per time point, each cell "mL · LD mm · viable mL": narrow enough for
        // the side panel with a few visits
        egui::ScrollArea::horizontal().id_salt("follow_up_table_scroll").show(ui, |ui| {
            egui::Grid::new("follow_up_table").striped(true).show(ui, |ui| {
                ui.label(RichText::new("lesion").small().strong());
                for tp in &tps {
                    ui.label(RichText::new(tp).small().strong()).on_hover_text(
                        "volume mL · longest axial diameter mm (RECIST) · viable (arterially enhancing) mL",
                    );
                }
                ui.end_row();
                ui.label("");
                for _ in &tps {
                    ui.label(RichText::new("mL · LD mm · viable").small());
                }
                ui.end_row();
                for (n, r) in rows.iter().enumerate() {
                    // new and gone lesions flagged in colour beside the name, the details on hover
                    let flag = if r.status.contains("NEW") {
                        Some(("NEW", Color32::from_rgb(255, 140, 100)))
                    } else if r.status.contains("GONE") {
                        Some(("GONE", Color32::from_rgb(120, 190, 255)))
                    } else {
                        r.status.contains("by hand").then_some(("hand", Color32::from_rgb(230, 200, 90)))
                    };
                    ui.horizontal(|ui| {
                        ui.spacing_mut().item_spacing.x = 3.0;
                        if ui
                            .selectable_label(self.selected == Some(n), &r.name)
                            .on_hover_text(format!("go to this lesion\n{}", r.status))
                            .clicked()
                        {
                            self.selected = Some(n);
                            jump = Some(r.at_mm);
                        }
                        if let Some((f, colour)) = flag {
                            ui.label(RichText::new(f).small().color(colour)).on_hover_text(&r.status);
                        }
                    });
                    for cell in &r.cells {
                        ui.label(
                            RichText::new(match cell {
                                Some(c) => format!(
                                    "{:.1} · {:.0} · {}",
                                    c.volume_ml,
                                    c.long_axis_mm,
                                    c.viable_ml.map_or("-".into(), |v| format!("{v:.1}"))
                                ),
                                None => "-".into(),
                            })
                            .small(),
                        );
                    }
                    ui.end_row();
                }
            });
        });
        jump
    }

    pub(super) fn assessment_ui(&mut self, ui: &mut egui::Ui) {
        let mut repairs = Vec::new();
        let mut splits = Vec::new();
        let mut automatic = Vec::new();
        let Some(c) = self.comparison.as_mut() else { return };
        ui.label(RichText::new(response::RESPONSE_DISCLAIMER).small().italics());
        for (vi, v) in c.visits.iter_mut().enumerate() {
            ui.separator();
            ui.strong(format!("{} vs {}", v.label, c.baseline_label));
            ui.label(RichText::new(format!("follow-up mask: {}", v.mask_note)).small());
            ui.label(RichText::new(&v.liver_note).small());
            let r = &v.response;
            let pct = |a: f64, b: f64| if a > 0.0 { format!("{:+.0} %", 100.0 * (b - a) / a) } else { "-".into() };
            ui.label(format!(
                "tumour volume {:.2} -> {:.2} mL ({})",
                r.total_baseline_ml,
                r.total_followup_ml,
                pct(r.total_baseline_ml, r.total_followup_ml)
            ));
            if let (Some(a), Some(b)) = (r.viable_baseline_ml, r.viable_followup_ml) {
                ui.label(format!("viable tumour {a:.2} -> {b:.2} mL ({})", pct(a, b)));
            }
            for (id, (p, lip)) in v.followup.parts.iter().zip(&v.followup.lipiodol_ml).enumerate() {
                let text = match p {
                    Some(p) => format!(
                        "  F{}: viable {:.2}, necrotic {:.2}, lipiodol {:.2} mL",
                        id + 1,
                        p.viable_ml,
                        p.necrotic_ml,
                        p.lipiodol_ml
                    ),
                    None => format!("  F{}: lipiodol {lip:.2} mL (viable and necrotic need an arterial phase)", id + 1),
                };
                ui.label(RichText::new(text).small());
            }
            let assessments = [
                ("RECIST 1.1", Some(&r.recist), &mut v.recist_override),
                ("mRECIST", r.mrecist.as_ref(), &mut v.mrecist_override),
            ];
            for (name, a, over) in assessments {
                let Some(a) = a else {
                    ui.label(format!("{name}: not assessed (no arterial phase in both visits)"));
                    continue;
                };
                let shown = over.unwrap_or(a.category);
                let who = if over.is_some() { "read by the radiologist" } else { "computed, to confirm" };
                ui.label(RichText::new(format!("{name}: {} ({who})", category_name(shown))).strong());
                ui.label(RichText::new(format!("computed {}: {}", category_name(a.category), a.reason)).small());
                for t in &a.targets {
                    let f = match (t.followup_fragments.len(), t.followup_id) {
                        (n, _) if n > 1 => {
                            t.followup_fragments.iter().map(|f| format!("F{f}")).collect::<Vec<_>>().join(" + ")
                        }
                        (_, Some(f)) => format!("F{f}"),
                        (_, None) => "gone".to_string(),
                    };
                    let sl = |s: Option<usize>| s.map_or("-".to_string(), |s| s.to_string());
                    ui.label(
                        RichText::new(format!(
                            "  B{} -> {f}: {:.1} -> {:.1} mm (slices {} / {})",
                            t.baseline_id,
                            t.baseline_mm,
                            t.followup_mm,
                            sl(t.baseline_slice),
                            sl(t.followup_slice)
                        ))
                        .small(),
                    );
                }
                egui::ComboBox::new(("category_override", vi, name), format!("{name} read {}", v.label))
                    .selected_text(match over {
                        Some(o) => category_name(*o).to_string(),
                        None => format!("confirm {}", category_name(a.category)),
                    })
                    .show_ui(ui, |ui| {
                        ui.selectable_value(over, None, format!("confirm {}", category_name(a.category)));
                        for cat in [Category::CR, Category::PR, Category::SD, Category::PD] {
                            ui.selectable_value(over, Some(cat), category_name(cat));
                        }
                    });
            }
            // re-pairing by hand
            let nf = v.followup.report.lesions.len();
            for l in &c.baseline.report.lesions {
                let now = v.pairs.iter().find(|p| p.baseline == Some(l.id)).and_then(|p| p.followup);
                let mut pick = now;
                let name = |f: Option<usize>| f.map_or("none (gone)".to_string(), |f| format!("-> F{f}"));
                egui::ComboBox::new(("repair", vi, l.id), format!("pair B{} in {}", l.id, v.label))
                    .selected_text(name(pick))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut pick, None, name(None));
                        for f in 1..=nf {
                            let fl = &v.followup.report.lesions[f - 1];
                            ui.selectable_value(&mut pick, Some(f), name(Some(f)))
                                .on_hover_text(format!("{:.2} mL, {:.0} mm", fl.volume_ml, fl.recist.long_axis_mm));
                        }
                    });
                if pick != now {
                    repairs.push((vi, l.id, pick));
                }
                // splitting: a treated tumour that broke into parts pairs with each of them
                let frags: Vec<usize> =
                    v.pairs.iter().filter(|p| p.baseline == Some(l.id)).filter_map(|p| p.followup).collect();
                if !frags.is_empty() && nf > frags.len() {
                    let mut add: Option<usize> = None;
                    egui::ComboBox::new(("split", vi, l.id), format!("split B{} in {}", l.id, v.label))
                        .selected_text("add a fragment")
                        .show_ui(ui, |ui| {
                            for f in (1..=nf).filter(|f| !frags.contains(f)) {
                                ui.selectable_value(&mut add, Some(f), format!("+ F{f}"));
                            }
                        });
                    if let Some(f) = add {
                        let mut all = frags.clone();
                        all.push(f);
                        splits.push((vi, l.id, all));
                    }
                }
            }
            if v.pairs != v.auto_pairs && ui.button(format!("Automatic pairing {}", v.label)).clicked() {
                automatic.push(vi);
            }
        }
        for vi in automatic {
            c.automatic_pairing(vi, &self.options);
        }
        for (vi, b, f) in repairs {
            self.repair(vi, b, f);
        }
        for (vi, b, fragments) in splits {
            self.split(vi, b, &fragments);
        }
    }

    pub(super) fn report_ui(&mut self, ui: &mut egui::Ui, study: &Study) {
        ui.separator();
        ui.horizontal(|ui| {
            let l = ui.label("Report folder");
            ui.add(egui::TextEdit::singleline(&mut self.report_dir).desired_width(220.0).hint_text("/path/to/folder"))
                .labelled_by(l.id);
        });
        if ui.button("Save report (HTML, JSON, CSV)").on_hover_text("one report per follow-up visit, with the categories as read here, the lesion pairs, viable / necrotic / lipiodol parts, the timeline and key images").clicked() {
            match self.save_report(study) {
                Ok(files) => {
                    self.error = None;
                    self.message = Some(format!("Report written: {}", files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")));
                }
                Err(e) => self.error = Some(e),
            }
        }
    }

    pub(super) fn timeline_ui(&mut self, ui: &mut egui::Ui) {
        let Some(c) = &self.comparison else { return };
        let tps = c.time_points();
        let rows = c.rows();
        ui.separator();
        ui.strong("Timeline");
        // the patient: total and viable tumour volume at each time point
        let mut total = vec![Some(c.baseline.report.lesions.iter().map(|l| l.volume_ml).sum::<f64>())];
        let mut viable = vec![c.baseline.parts.iter().map(|p| p.as_ref().map(|p| p.viable_ml)).sum::<Option<f64>>()];
        for v in &c.visits {
            total.push(Some(v.response.total_followup_ml));
            viable.push(v.response.viable_followup_ml);
        }
        timeline_plot(
            ui,
            "patient",
            &tps,
            &[
                ("total mL", Color32::from_rgb(230, 200, 90), total),
                ("viable mL", Color32::from_rgb(240, 90, 90), viable),
            ],
            90.0,
        );
        // the lesion picked in the table, then every lesion on demand
        if let Some(r) = self.selected.and_then(|n| rows.get(n)) {
            let total: Vec<Option<f64>> = r.cells.iter().map(|c| c.map(|c| c.volume_ml)).collect();
            let viable: Vec<Option<f64>> = r.cells.iter().map(|c| c.and_then(|c| c.viable_ml)).collect();
            timeline_plot(
                ui,
                &format!("lesion {}", r.name),
                &tps,
                &[
                    ("total mL", Color32::from_rgb(230, 200, 90), total),
                    ("viable mL", Color32::from_rgb(240, 90, 90), viable),
                ],
                70.0,
            );
        }
        ui.collapsing("per lesion", |ui| {
            for r in &rows {
                let total: Vec<Option<f64>> = r.cells.iter().map(|c| c.map(|c| c.volume_ml)).collect();
                let viable: Vec<Option<f64>> = r.cells.iter().map(|c| c.and_then(|c| c.viable_ml)).collect();
                timeline_plot(
                    ui,
                    &r.name,
                    &tps,
                    &[
                        ("total mL", Color32::from_rgb(230, 200, 90), total),
                        ("viable mL", Color32::from_rgb(240, 90, 90), viable),
                    ],
                    60.0,
                );
            }
        });
    }
}

/// A small line plot of values over the time points, drawn with the painter; a missing
/// value (lesion absent) is drawn as 0 with a hollow marker.
pub fn timeline_plot(
    ui: &mut egui::Ui,
    title: &str,
    time_points: &[String],
    series: &[(&str, Color32, Vec<Option<f64>>)],
    height: f32,
) {
    let width = ui.available_width().clamp(160.0, 320.0);
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, height), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let text = ui.visuals().text_color();
    painter.rect_stroke(rect, 2.0, Stroke::new(1.0, Color32::from_gray(70)), egui::StrokeKind::Inside);
    let font = egui::FontId::proportional(10.0);
    let plot = egui::Rect::from_min_max(rect.min + egui::vec2(34.0, 14.0), rect.max - egui::vec2(8.0, 14.0));
    let max = series.iter().flat_map(|s| s.2.iter().flatten().copied()).fold(0.0f64, f64::max).max(1e-6);
    painter.text(rect.min + egui::vec2(4.0, 2.0), egui::Align2::LEFT_TOP, title, font.clone(), text);
    painter.text(
        egui::pos2(rect.min.x + 4.0, plot.min.y),
        egui::Align2::LEFT_TOP,
        format!("{max:.1}"),
        font.clone(),
        text,
    );
    painter.text(egui::pos2(rect.min.x + 4.0, plot.max.y), egui::Align2::LEFT_BOTTOM, "0", font.clone(), text);
    let n = time_points.len().max(1);
    let x = |i: usize| if n == 1 { plot.center().x } else { plot.min.x + plot.width() * i as f32 / (n - 1) as f32 };
    let y = |v: f64| plot.max.y - plot.height() * (v / max) as f32;
    painter.line_segment([plot.left_bottom(), plot.right_bottom()], Stroke::new(1.0, Color32::from_gray(90)));
    for (i, tp) in time_points.iter().enumerate() {
        let align = if i == 0 && n > 1 {
            egui::Align2::LEFT_TOP
        } else if i + 1 == n && n > 1 {
            egui::Align2::RIGHT_TOP
        } else {
            egui::Align2::CENTER_TOP
        };
        painter.text(egui::pos2(x(i), plot.max.y + 1.0), align, tp, font.clone(), text);
    }
    for (k, (name, colour, values)) in series.iter().enumerate() {
        let pts: Vec<egui::Pos2> =
            values.iter().enumerate().map(|(i, v)| egui::pos2(x(i), y(v.unwrap_or(0.0)))).collect();
        if pts.len() > 1 {
            painter.add(egui::Shape::line(pts.clone(), Stroke::new(1.5, *colour)));
        }
        for (p, v) in pts.iter().zip(values) {
            if v.is_some() {
                painter.circle_filled(*p, 2.5, *colour);
            } else {
                painter.circle_stroke(*p, 2.5, Stroke::new(1.0, *colour));
            }
        }
        painter.text(
            egui::pos2(plot.max.x - 70.0 * (series.len() - k) as f32 + 70.0, rect.min.y + 2.0),
            egui::Align2::RIGHT_TOP,
            *name,
            font.clone(),
            *colour,
        );
    }
}
