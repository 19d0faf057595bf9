//! The self-contained HTML page of a report: inline CSS, key images as data URIs, the
//! enhancement curves as inline SVG. Opens from a USB stick or an e-mail with no network.

use std::fmt::Write;

use base64::Engine;

use super::{cluster_colour, images, ReportInput};
use crate::io::phase::Phase;
use crate::lesion::{Evidence, Lesion, PhaseStats};

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn short(p: Phase) -> &'static str {
    match p {
        Phase::NonContrast => "NC",
        Phase::Arterial => "AP",
        Phase::PortalVenous => "PV",
        Phase::Delayed => "DL",
        Phase::Unknown => "?",
    }
}

pub(crate) const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1d2330;background:#fafbfc;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d4dc;padding-bottom:4px}
.meta{color:#5a6272;font-size:13px}.warn{background:#fff4d6;border:1px solid #e8c45c;padding:8px 12px;border-radius:6px;margin:12px 0;font-size:14px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}th,td{border:1px solid #d0d4dc;padding:4px 8px;text-align:right}th{background:#eef1f5}
td.l,th.l{text-align:left}.lesion{background:#fff;border:1px solid #d0d4dc;border-radius:8px;padding:12px 16px;margin:16px 0}
.imgs{display:flex;gap:10px;flex-wrap:wrap;align-items:flex-start}figure{margin:0;text-align:center;font-size:12px;color:#5a6272}
figure img{display:block;border:1px solid #333;image-rendering:pixelated}.chip{display:inline-block;padding:2px 8px;border-radius:10px;margin:2px;font-size:12px}
.yes{background:#ffd9cc}.no{background:#e4e8ee}.na{background:#f3f3f3;color:#888}.hint{font-weight:600;font-size:15px}
.sw{display:inline-block;width:14px;height:14px;border:1px solid #555;vertical-align:middle}";

/// The whole page.
pub fn page(input: &ReportInput) -> String {
    let mut h = String::new();
    let _ = write!(h, "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Lesion report: {}</title><style>{STYLE}</style></head><body>", esc(&input.title));
    let _ = write!(
        h,
        "<h1>Liver lesion report</h1><div class=\"meta\">{}<br>Mask: {} &middot; Hepaview {}</div>",
        esc(&input.title),
        esc(&input.mask_source),
        env!("CARGO_PKG_VERSION")
    );
    let _ = write!(
        h,
        "<div class=\"warn\"><b>Decision support, not a diagnosis.</b> {}</div>",
        esc(&input.lesions.disclaimer)
    );
    h.push_str("<div class=\"meta\">Phases: ");
    let phases: Vec<String> = input
        .phases
        .iter()
        .map(|p| format!("{} ({}{})", p.phase, esc(&p.description), if p.registered { ", registered" } else { "" }))
        .collect();
    h.push_str(&phases.join(" &middot; "));
    for n in &input.notes {
        let _ = write!(h, "<br>{}", esc(n));
    }
    h.push_str("</div>");
    summary_table(&mut h, input);
    for l in &input.lesions.lesions {
        lesion_section(&mut h, input, l);
    }
    if let Some(c) = input.clusters {
        let _ = write!(h, "<h2>Tissue clusters (k-means, k = {})</h2><table><tr><th class=\"l\">cluster</th>", c.k);
        for n in &c.feature_names {
            let _ = write!(h, "<th>{} mean HU</th>", esc(n));
        }
        h.push_str("<th>voxels</th><th>volume mL</th></tr>");
        for s in &c.clusters {
            let [r, g, b] = cluster_colour(s.label, c.k);
            let _ = write!(
                h,
                "<tr><td class=\"l\"><span class=\"sw\" style=\"background:rgb({r},{g},{b})\"></span> {}</td>",
                s.label
            );
            for m in &s.mean {
                let _ = write!(h, "<td>{m:.0}</td>");
            }
            let _ = write!(h, "<td>{}</td><td>{:.1}</td></tr>", s.voxel_count, s.volume_ml);
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    h
}

fn summary_table(h: &mut String, input: &ReportInput) {
    let r = input.lesions;
    let _ = write!(h, "<h2>Lesions ({})</h2>", r.lesions.len());
    if r.lesions.is_empty() {
        let _ = write!(
            h,
            "<p>No lesion (label {}) of at least {} mL in the mask.</p>",
            r.options.lesion_label, r.options.min_volume_ml
        );
        return;
    }
    h.push_str("<table><tr><th>#</th><th>volume mL</th><th>RECIST long &times; short mm</th><th>longest 3D mm</th><th>centroid LPS mm</th><th class=\"l\">pattern hint</th></tr>");
    for l in &r.lesions {
        let _ = write!(
            h,
            "<tr><td><a href=\"#lesion-{id}\">{id}</a></td><td>{:.2}</td><td>{:.1} &times; {:.1}</td><td>{:.1}</td><td>{:.1}, {:.1}, {:.1}</td><td class=\"l\">{}{}</td></tr>",
            l.volume_ml,
            l.recist.long_axis_mm,
            l.recist.short_axis_mm,
            l.longest_diameter_3d_mm,
            l.centroid_mm[0],
            l.centroid_mm[1],
            l.centroid_mm[2],
            esc(&l.pattern.summary),
            if l.touches_edge { " <b>(touches the scan edge: size is a lower bound)</b>" } else { "" },
            id = l.id
        );
    }
    h.push_str("</table>");
    if r.dropped_small > 0 {
        let _ = write!(
            h,
            "<div class=\"meta\">{} component(s) smaller than {} mL left out.</div>",
            r.dropped_small, r.options.min_volume_ml
        );
    }
}

fn lesion_section(h: &mut String, input: &ReportInput, l: &Lesion) {
    let _ = write!(
        h,
        "<div class=\"lesion\" id=\"lesion-{}\"><h2>Lesion {}: {:.2} mL, {:.1} &times; {:.1} mm</h2>",
        l.id, l.id, l.volume_ml, l.recist.long_axis_mm, l.recist.short_axis_mm
    );
    let _ = write!(h, "<div class=\"hint\">Pattern hint: {}</div>", esc(&l.pattern.summary));
    evidence_chips(h, &l.pattern.evidence);
    h.push_str("<div class=\"imgs\">");
    let vols: Vec<_> = input.phases.iter().map(|p| p.volume.as_ref()).collect();
    let pngs = images::key_images(l, input.mask, input.lesions.options.lesion_label, &vols);
    let z_mm = input.mask.geometry.index_to_world([0.0, 0.0, l.recist.slice as f64])[2];
    for (p, png) in input.phases.iter().zip(&pngs) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        let _ = write!(h, "<figure><img alt=\"lesion {} {}\" src=\"data:image/png;base64,{b64}\"><figcaption>{} &middot; z {:.1} mm</figcaption></figure>", l.id, p.phase, p.phase, z_mm);
    }
    h.push_str(&curve_svg(&l.phases));
    h.push_str("</div><div class=\"meta\">Window 350/50 HU. Yellow: lesion outline; cyan: RECIST long axis; green: short axis.</div>");
    h.push_str("<table><tr><th class=\"l\">phase</th><th>lesion mean &plusmn; SD</th><th>median</th><th>core median</th><th>rim median</th><th>liver ring mean</th><th>lesion &minus; liver</th></tr>");
    for s in &l.phases {
        let _ = write!(
            h,
            "<tr><td class=\"l\">{}</td><td>{:.0} &plusmn; {:.0}</td><td>{:.0}</td><td>{}</td><td>{:.0}</td><td>{}</td><td>{}</td></tr>",
            s.phase,
            s.lesion.mean_hu,
            s.lesion.sd_hu,
            s.lesion.median_hu,
            s.core.as_ref().map(|c| format!("{:.0}", c.median_hu)).unwrap_or_else(|| "&ndash;".into()),
            s.rim.median_hu,
            s.liver_ring.as_ref().map(|c| format!("{:.0}", c.mean_hu)).unwrap_or_else(|| "&ndash;".into()),
            s.lesion_minus_liver_hu.map(|v| format!("{v:+.0}")).unwrap_or_else(|| "&ndash;".into()),
        );
    }
    h.push_str("</table><ul>");
    for f in &l.pattern.findings {
        let _ = write!(h, "<li>{}</li>", esc(f));
    }
    let _ = write!(
        h,
        "</ul><div class=\"meta\">Longest 3D diameter {:.1} mm; centroid LPS ({:.1}, {:.1}, {:.1}) mm; {} voxels{}.</div></div>",
        l.longest_diameter_3d_mm,
        l.centroid_mm[0],
        l.centroid_mm[1],
        l.centroid_mm[2],
        l.voxel_count,
        if l.touches_edge { "; touches the edge of the scan, so the size is a lower bound" } else { "" }
    );
}

fn evidence_chips(h: &mut String, e: &Evidence) {
    let items = [
        ("arterial hyper-enhancement", e.arterial_hyperenhancement),
        ("washout", e.washout),
        ("capsule-like rim", e.capsule_like_rim),
        ("arterial rim enhancement", e.arterial_rim_enhancement),
        ("peripheral nodular fill-in", e.peripheral_nodular_fill_in),
        ("near water, no enhancement", e.near_water_no_enhancement),
        ("core hypo in every phase", e.core_hypo_in_every_phase),
    ];
    h.push_str("<div>");
    for (name, v) in items {
        let (class, mark) = match v {
            Some(true) => ("yes", "yes"),
            Some(false) => ("no", "no"),
            None => ("na", "n/a"),
        };
        let _ = write!(h, "<span class=\"chip {class}\">{name}: {mark}</span>");
    }
    h.push_str("</div>");
}

/// Mean HU of the lesion and of the liver ring around it, phase by phase.
fn curve_svg(phases: &[PhaseStats]) -> String {
    let (w, ht, left, right, top, bottom) = (300.0f64, 192.0f64, 44.0, 12.0, 14.0, 30.0);
    let lesion: Vec<f64> = phases.iter().map(|s| s.lesion.mean_hu).collect();
    let liver: Vec<Option<f64>> = phases.iter().map(|s| s.liver_ring.as_ref().map(|r| r.mean_hu)).collect();
    let all: Vec<f64> = lesion.iter().copied().chain(liver.iter().flatten().copied()).collect();
    if all.is_empty() {
        return String::new();
    }
    let lo = (all.iter().cloned().fold(f64::INFINITY, f64::min) / 50.0).floor() * 50.0 - 10.0;
    let hi = (all.iter().cloned().fold(f64::NEG_INFINITY, f64::max) / 50.0).ceil() * 50.0 + 10.0;
    let n = phases.len();
    let x = |i: usize| {
        left + if n <= 1 { (w - left - right) / 2.0 } else { i as f64 * (w - left - right) / (n - 1) as f64 }
    };
    let y = |v: f64| top + (hi - v) / (hi - lo) * (ht - top - bottom);
    let mut s = format!("<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" style=\"background:#fff;border:1px solid #ccc\">");
    for t in 0..=4 {
        let v = lo + (hi - lo) * t as f64 / 4.0;
        let _ = write!(s, "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\" fill=\"#666\">{v:.0}</text>", w - right, left - 4.0, y(v) + 3.0, y = y(v));
    }
    for (i, p) in phases.iter().enumerate() {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
            x(i),
            ht - 10.0,
            short(p.phase)
        );
    }
    let poly = |pts: Vec<(usize, f64)>, colour: &str, s: &mut String| {
        let d: Vec<String> = pts.iter().map(|&(i, v)| format!("{:.1},{:.1}", x(i), y(v))).collect();
        let _ =
            write!(s, "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>", d.join(" "));
        for &(i, v) in &pts {
            let _ = write!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>", x(i), y(v));
        }
    };
    poly(liver.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i, v))).collect(), "#3b6fd8", &mut s);
    poly(lesion.iter().copied().enumerate().collect(), "#e0662b", &mut s);
    let _ = write!(s, "<text x=\"{}\" y=\"12\" font-size=\"10\" fill=\"#e0662b\">lesion</text><text x=\"{}\" y=\"12\" font-size=\"10\" fill=\"#3b6fd8\">liver ring</text>", left + 4.0, left + 50.0);
    s.push_str("</svg><figcaption>mean HU per phase</figcaption></figure>");
    s
}
