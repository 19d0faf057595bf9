//! The lesion table of a comparison: one row per baseline lesion followed through the
//! visits (fragments of a lesion split by hand added up), then one row per lesion new at a
//! visit, followed into the later visits by nearness (every visit lies on the baseline's
//! grid, so the same new lesion sits at about the same place).

use super::response::{Pairing, VisitMeasure};
use crate::volume::{norm, sub, Lps};

/// One visit as the table reads it: its label, what was measured, and its lesion pairs as
/// now and as matched automatically (a difference is flagged "paired by hand").
pub struct TimePoint<'a> {
    pub label: &'a str,
    pub followup: &'a VisitMeasure,
    pub pairs: &'a [Pairing],
    pub auto_pairs: &'a [Pairing],
}

/// A lesion's figures at one time point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    pub volume_ml: f64,
    pub long_axis_mm: f64,
    pub viable_ml: Option<f64>,
}

/// One row of the lesion table: a baseline lesion followed through the visits, or a
/// lesion new at one visit.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: String,
    /// One per time point (baseline first); `None`: not there (gone, or not yet).
    pub cells: Vec<Option<Cell>>,
    pub status: String,
    /// Where to put the crosshair (baseline world, which the follow-ups share).
    pub at_mm: Lps,
}

/// How far past its own radius (of a sphere of its volume) a new lesion may have moved
/// between two follow-ups and still be taken for the same lesion.
const NEW_LESION_REACH_MM: f64 = 10.0;

fn cell(m: &VisitMeasure, id: usize) -> Option<Cell> {
    let l = m.report.lesions.get(id.checked_sub(1)?)?;
    Some(Cell {
        volume_ml: l.volume_ml,
        long_axis_mm: l.recist.long_axis_mm,
        viable_ml: m.parts.get(id - 1).and_then(|p| p.as_ref()).map(|p| p.viable_ml),
    })
}

/// The lesion table: baseline lesions followed through each visit, then each visit's
/// new lesions.
pub fn lesion_rows(baseline: &VisitMeasure, visits: &[TimePoint<'_>]) -> Vec<Row> {
    let n = visits.len() + 1;
    let mut rows = Vec::new();
    for l in &baseline.report.lesions {
        let mut cells = vec![cell(baseline, l.id)];
        let mut status = Vec::new();
        for v in visits {
            // a lesion split by hand has several fragments: volumes add, diameters add
            // (RECIST 1.1), viable volumes add
            let frags: Vec<usize> =
                v.pairs.iter().filter(|p| p.baseline == Some(l.id)).filter_map(|p| p.followup).collect();
            let parts: Vec<Cell> = frags.iter().filter_map(|&f| cell(v.followup, f)).collect();
            cells.push((!parts.is_empty()).then(|| Cell {
                volume_ml: parts.iter().map(|c| c.volume_ml).sum(),
                long_axis_mm: parts.iter().map(|c| c.long_axis_mm).sum(),
                viable_ml: parts.iter().map(|c| c.viable_ml).sum(),
            }));
            let mine = |ps: &[Pairing]| ps.iter().filter(|p| p.baseline == Some(l.id)).cloned().collect::<Vec<_>>();
            let hand = if mine(v.pairs) != mine(v.auto_pairs) { ", paired by hand" } else { "" };
            let names: Vec<String> = frags.iter().map(|f| format!("F{f}")).collect();
            status.push(match frags.len() {
                0 => format!("GONE at {}{hand}", v.label),
                1 => format!("{} at {}{hand}", names[0], v.label),
                _ => format!("split into {} at {}{hand}", names.join(" + "), v.label),
            });
        }
        rows.push(Row { name: format!("B{}", l.id), cells, status: status.join("; "), at_mm: l.centroid_mm });
    }
    // A lesion new at one visit is followed into the later ones: every visit lies on the
    // baseline's grid, so the same lesion is a new lesion there too, at about the same
    // place. Each later new lesion joins at most one row.
    let news: Vec<Vec<usize>> = visits
        .iter()
        .map(|v| v.pairs.iter().filter(|p| p.baseline.is_none()).filter_map(|p| p.followup).collect())
        .collect();
    let mut claimed: Vec<Vec<bool>> = news.iter().map(|n| vec![false; n.len()]).collect();
    for vi in 0..visits.len() {
        for (ni, &f) in news[vi].iter().enumerate() {
            if claimed[vi][ni] {
                continue;
            }
            claimed[vi][ni] = true;
            let v = &visits[vi];
            let mut cells = vec![None; n];
            cells[vi + 1] = cell(v.followup, f);
            let first = &v.followup.report.lesions[f - 1];
            let mut status = vec![format!("NEW at {}", v.label)];
            let mut last = (first.centroid_mm, first.volume_ml);
            for vj in vi + 1..visits.len() {
                let w = &visits[vj];
                let reach_mm = (3.0 * last.1 * 1000.0 / (4.0 * std::f64::consts::PI)).cbrt() + NEW_LESION_REACH_MM;
                let near = news[vj]
                    .iter()
                    .enumerate()
                    .filter(|(nj, _)| !claimed[vj][*nj])
                    .map(|(nj, &g)| (nj, g, norm(sub(w.followup.report.lesions[g - 1].centroid_mm, last.0))))
                    .filter(|(_, _, d)| *d <= reach_mm)
                    .min_by(|a, b| a.2.total_cmp(&b.2));
                match near {
                    Some((nj, g, _)) => {
                        claimed[vj][nj] = true;
                        cells[vj + 1] = cell(w.followup, g);
                        let l = &w.followup.report.lesions[g - 1];
                        last = (l.centroid_mm, l.volume_ml);
                        status.push(format!("F{g} at {}", w.label));
                    }
                    None => status.push(format!("not found at {}", w.label)),
                }
            }
            rows.push(Row { name: format!("F{f}"), cells, status: status.join("; "), at_mm: first.centroid_mm });
        }
    }
    rows
}
