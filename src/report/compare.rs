//! The follow-up report: response categories with their evidence, lesions paired across
//! the visits with volumes and viable / necrotic / lipiodol parts, a timeline of total and
//! viable tumour volume, and before/after key images of each lesion in the arterial phase.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine;

use super::{esc, images, write_atomic, ReportError};
use crate::follow_up::response::{Assessment, Category, Response, VisitMeasure};
use crate::follow_up::Comparison;
use crate::io::phase::Phase;
use crate::register::aligned::AlignedPhase;
use crate::volume::Mask;

/// One visit as the report shows it.
pub struct VisitInput<'a> {
    pub label: String,
    pub phases: &'a [AlignedPhase],
    pub mask: &'a Mask,
}

pub struct CompareFiles {
    pub json: PathBuf,
    pub csv: PathBuf,
    pub html: PathBuf,
}

/// What a follow-up report says about one visit against the baseline, wherever the
/// comparison was made (`hepaview compare`, or the viewer's Follow-up panel).
pub struct ResponseReport<'a> {
    /// How the visits were aligned: one sentence for the page, and the figures for the JSON.
    pub alignment_note: String,
    pub alignment_json: serde_json::Value,
    pub baseline: &'a VisitMeasure,
    pub followup: &'a VisitMeasure,
    pub response: &'a Response,
    /// The radiologist's reading where it differs from the computed category (the
    /// categories are a measurement aid; the reader has the last word, and the report
    /// says both).
    pub recist_read: Option<Category>,
    pub mrecist_read: Option<Category>,
}

impl<'a> ResponseReport<'a> {
    /// The report of `hepaview compare`'s comparison (no reading by hand yet).
    pub fn of(c: &'a Comparison) -> Self {
        let t = &c.rigid.transform;
        ResponseReport {
            alignment_note: format!(
                "Visits aligned rigid then affine (NCC {:.3} → {:.3}); rigid part: rotation {:.1}°, translation ({:.1}, {:.1}, {:.1}) mm.",
                c.rigid.ncc_before,
                c.affine.ncc_after.max(c.rigid.ncc_after),
                t.rotation_deg(),
                t.translation_mm[0],
                t.translation_mm[1],
                t.translation_mm[2]
            ),
            alignment_json: serde_json::json!({"baseline_to_followup": c.transform, "rigid": c.rigid, "affine": c.affine, "liver_demons": c.liver_demons}),
            baseline: &c.baseline,
            followup: &c.followup,
            response: &c.response,
            recist_read: None,
            mrecist_read: None,
        }
    }
}

/// Writes `compare.json`, `lesions.csv` and `compare.html` into `dir`, refusing to
/// overwrite any of them.
pub fn write_compare_report(
    c: &Comparison,
    base: &VisitInput,
    follow: &VisitInput,
    dir: &Path,
) -> Result<CompareFiles, ReportError> {
    write_response_report(&ResponseReport::of(c), base, follow, dir)
}

/// As [`write_compare_report`] for any comparison.
pub fn write_response_report(
    r: &ResponseReport,
    base: &VisitInput,
    follow: &VisitInput,
    dir: &Path,
) -> Result<CompareFiles, ReportError> {
    let files =
        CompareFiles { json: dir.join("compare.json"), csv: dir.join("lesions.csv"), html: dir.join("compare.html") };
    if let Some(p) = [&files.json, &files.csv, &files.html].into_iter().find(|p| p.exists()) {
        return Err(ReportError::Exists(p.clone()));
    }
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io { path: dir.to_path_buf(), source })?;
    let mut json = serde_json::json!({
        "software": format!("Hepaview {}", env!("CARGO_PKG_VERSION")),
        "alignment": r.alignment_json,
        "response": r.response,
        "reader": {
            "recist": r.recist_read.unwrap_or(r.response.recist.category),
            "recist_overridden": r.recist_read.is_some_and(|c| c != r.response.recist.category),
            "mrecist": r.mrecist_read.or(r.response.mrecist.as_ref().map(|m| m.category)),
            "mrecist_overridden": r.mrecist_read.is_some_and(|c| Some(c) != r.response.mrecist.as_ref().map(|m| m.category)),
        },
    });
    // `hepaview compare` has always put the transform at the top level; keep it there
    if let Some(t) = r.alignment_json.get("baseline_to_followup") {
        json["baseline_to_followup"] = t.clone();
    }
    let bytes = serde_json::to_vec_pretty(&json)
        .map_err(|e| ReportError::Encode { path: files.json.clone(), detail: e.to_string() })?;
    write_atomic(&files.json, &bytes)?;
    write_atomic(
        &files.csv,
        &csv(r.response).map_err(|detail| ReportError::Encode { path: files.csv.clone(), detail })?,
    )?;
    write_atomic(&files.html, page(r, base, follow).as_bytes())?;
    Ok(files)
}

fn csv(r: &Response) -> Result<Vec<u8>, String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "baseline_lesion",
        "followup_lesion",
        "status",
        "baseline_ml",
        "followup_ml",
        "change_percent",
        "followup_viable_ml",
        "followup_necrotic_ml",
        "followup_lipiodol_ml",
    ])
    .map_err(|e| e.to_string())?;
    let o = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_default();
    for l in &r.lesions {
        let p = &l.pairing;
        let fp = l.followup_parts.as_ref();
        w.write_record([
            p.baseline.map(|b| b.to_string()).unwrap_or_default(),
            p.followup.map(|f| f.to_string()).unwrap_or_default(),
            status(p.baseline, p.followup).to_string(),
            format!("{:.3}", l.baseline_ml),
            format!("{:.3}", l.followup_ml),
            o(l.change_percent),
            o(fp.map(|p| p.viable_ml)),
            o(fp.map(|p| p.necrotic_ml)),
            o(fp.map(|p| p.lipiodol_ml).or(l.followup_lipiodol_ml)),
        ])
        .map_err(|e| e.to_string())?;
    }
    w.into_inner().map_err(|e| e.to_string())
}

fn status(b: Option<usize>, f: Option<usize>) -> &'static str {
    match (b, f) {
        (Some(_), Some(_)) => "matched",
        (Some(_), None) => "disappeared",
        (None, Some(_)) => "new",
        (None, None) => "",
    }
}

fn category_name(c: Category) -> &'static str {
    match c {
        Category::CR => "CR (complete response)",
        Category::PR => "PR (partial response)",
        Category::SD => "SD (stable disease)",
        Category::PD => "PD (progressive disease)",
    }
}

fn assessment(h: &mut String, name: &str, a: &Assessment, read: Option<Category>) {
    match read.filter(|&c| c != a.category) {
        Some(c) => {
            let _ = write!(h, "<h3>{name}: {} (reader)</h3><p><b>Read by the radiologist as {}; the measurement aid computed {}:</b> {}</p>", category_name(c), category_name(c), category_name(a.category), esc(&a.reason));
        }
        None => {
            let _ = write!(h, "<h3>{name}: {}</h3><p>{}</p>", category_name(a.category), esc(&a.reason));
        }
    }
    if a.targets.is_empty() {
        return;
    }
    h.push_str("<table><tr><th>target (baseline #)</th><th>baseline mm (slice)</th><th>follow-up #</th><th>follow-up mm (slice)</th></tr>");
    for t in &a.targets {
        let sl = |s: Option<usize>| s.map(|s| format!(" ({s})")).unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.1}{}</td><td>{}</td><td>{:.1}{}</td></tr>",
            t.baseline_id,
            t.baseline_mm,
            sl(t.baseline_slice),
            t.followup_id.map(|f| f.to_string()).unwrap_or_else(|| "gone".into()),
            t.followup_mm,
            sl(t.followup_slice)
        );
    }
    let _ = write!(
        h,
        "<tr><th>sum</th><th>{:.1}</th><th></th><th>{:.1} ({:+.0} %)</th></tr></table>",
        a.baseline_sum_mm, a.followup_sum_mm, a.change_percent
    );
}

/// Total and viable volume at the two visits.
fn timeline(r: &Response) -> String {
    let series: Vec<(&str, &str, [f64; 2])> = [
        Some(("total", "#e0662b", [r.total_baseline_ml, r.total_followup_ml])),
        r.viable_baseline_ml.zip(r.viable_followup_ml).map(|(a, b)| ("viable", "#2a9d4b", [a, b])),
    ]
    .into_iter()
    .flatten()
    .collect();
    let max = series.iter().flat_map(|s| s.2).fold(1e-6, f64::max) * 1.15;
    let (w, ht, left, bottom, top) = (320.0, 180.0, 46.0, 28.0, 14.0);
    let x = |i: usize| left + 30.0 + i as f64 * (w - left - 60.0);
    let y = |v: f64| top + (1.0 - v / max) * (ht - top - bottom);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" style=\"background:#fff;border:1px solid #ccc\">");
    for t in 0..=4 {
        let v = max * t as f64 / 4.0;
        let yy = y(v);
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#666\">{v:.1}</text>",
            w - 8.0,
            left - 4.0,
            yy + 3.0
        );
    }
    for (i, label) in [&r.baseline, &r.followup].iter().enumerate() {
        // the last word of a study title is its date; the whole title would not fit
        let short = label.split_whitespace().last().unwrap_or(label);
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{}</text>",
            x(i),
            ht - 8.0,
            esc(short)
        );
    }
    for (n, (name, colour, v)) in series.iter().enumerate() {
        let _ = write!(
            s,
            "<polyline points=\"{:.1},{:.1} {:.1},{:.1}\" stroke=\"{colour}\" stroke-width=\"2\" fill=\"none\"/>",
            x(0),
            y(v[0]),
            x(1),
            y(v[1])
        );
        for (i, vv) in v.iter().enumerate() {
            let _ = write!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>", x(i), y(*vv));
        }
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"12\" font-size=\"10\" fill=\"{colour}\">{name} mL</text>",
            left + 4.0 + 70.0 * n as f64
        );
    }
    s.push_str("</svg>");
    s
}

fn key_image(
    v: &VisitInput,
    m: &crate::follow_up::response::VisitMeasure,
    id: usize,
    lesion_label: u8,
) -> Option<String> {
    let l = m.report.lesions.get(id.checked_sub(1)?)?;
    let phase = v.phases.iter().find(|p| p.phase == Phase::Arterial).or(v.phases.first())?;
    let png = images::key_images(l, v.mask, lesion_label, &[phase.volume.as_ref()]).pop()?;
    Some(format!(
        "<figure><img alt=\"{} lesion {id}\" src=\"data:image/png;base64,{}\"><figcaption>{} #{id} &middot; {}</figcaption></figure>",
        esc(&v.label),
        base64::engine::general_purpose::STANDARD.encode(png),
        esc(&v.label),
        phase.phase
    ))
}

fn page(rep: &ResponseReport, base: &VisitInput, follow: &VisitInput) -> String {
    let r = rep.response;
    let mut h = String::new();
    let _ = write!(h, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Follow-up: {} vs {}</title><style>{}</style></head><body>", esc(&r.baseline), esc(&r.followup), super::html::STYLE);
    let _ = write!(
        h,
        "<h1>Treatment response</h1><div class=\"meta\">Baseline {} &middot; follow-up {} &middot; Hepaview {}</div>",
        esc(&r.baseline),
        esc(&r.followup),
        env!("CARGO_PKG_VERSION")
    );
    let _ = write!(h, "<div class=\"warn\"><b>Measurement aid, not a verdict.</b> {}</div>", esc(&r.disclaimer));
    let _ = write!(h, "<div class=\"meta\">{}</div>", esc(&rep.alignment_note));
    h.push_str("<h2>Response</h2>");
    assessment(&mut h, "RECIST 1.1", &r.recist, rep.recist_read);
    match &r.mrecist {
        Some(m) => assessment(&mut h, "mRECIST (viable tumour)", m, rep.mrecist_read),
        None => h.push_str("<h3>mRECIST: not assessed</h3><p>A visit has no arterial phase, so viable tumour cannot be told from necrosis.</p>"),
    }
    let pct = |a: f64, b: f64| if a > 0.0 { format!("{:+.0} %", 100.0 * (b - a) / a) } else { String::new() };
    let _ = write!(
        h,
        "<h2>Tumour volume</h2><p>Total {:.2} &rarr; {:.2} mL ({})",
        r.total_baseline_ml,
        r.total_followup_ml,
        pct(r.total_baseline_ml, r.total_followup_ml)
    );
    if let (Some(a), Some(b)) = (r.viable_baseline_ml, r.viable_followup_ml) {
        let _ = write!(h, "; viable {a:.2} &rarr; {b:.2} mL ({})", pct(a, b));
    }
    h.push_str("</p>");
    h.push_str(&timeline(r));
    h.push_str("<h2>Lesions</h2><table><tr><th>baseline #</th><th>follow-up #</th><th class=\"l\">status</th><th>baseline mL</th><th>follow-up mL</th><th>change</th><th>viable mL</th><th>necrotic mL</th><th>lipiodol mL</th></tr>");
    for l in &r.lesions {
        let p = &l.pairing;
        let fp = l.followup_parts.as_ref();
        let o = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "&ndash;".into());
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{:.2}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.baseline.map(|b| b.to_string()).unwrap_or_else(|| "&ndash;".into()),
            p.followup.map(|f| f.to_string()).unwrap_or_else(|| "&ndash;".into()),
            status(p.baseline, p.followup),
            l.baseline_ml,
            l.followup_ml,
            l.change_percent.map(|c| format!("{c:+.0} %")).unwrap_or_default(),
            o(fp.map(|p| p.viable_ml)),
            o(fp.map(|p| p.necrotic_ml)),
            o(fp.map(|p| p.lipiodol_ml).or(l.followup_lipiodol_ml)),
        );
    }
    h.push_str("</table><h2>Before / after</h2>");
    let label = rep.baseline.report.options.lesion_label;
    for l in &r.lesions {
        let p = &l.pairing;
        h.push_str("<div class=\"imgs\">");
        if let Some(img) = p.baseline.and_then(|b| key_image(base, rep.baseline, b, label)) {
            h.push_str(&img);
        }
        if let Some(img) = p.followup.and_then(|f| key_image(follow, rep.followup, f, label)) {
            h.push_str(&img);
        }
        let _ = write!(h, "<div class=\"meta\">{}</div></div>", status(p.baseline, p.followup));
    }
    h.push_str("</body></html>\n");
    h
}
