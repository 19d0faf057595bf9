//! Key images of a lesion: the axial slice of its RECIST measurement, cropped around it, in
//! each phase with the same window, the lesion outlined and the RECIST axes drawn, so the
//! radiologist reading the report sees what was measured.

use image::{ImageFormat, Rgb, RgbImage};

use crate::lesion::Lesion;
use crate::volume::{CtVolume, Lps, Mask};

/// Soft-tissue window that shows liver, lesions and vessels together.
pub const KEY_WINDOW_HU: (f32, f32) = (350.0, 50.0);
/// Crops are at least this wide so small lesions keep their surroundings.
const MIN_FOV_MM: f64 = 50.0;
/// Output size of the longer side, pixels.
const SIZE_PX: u32 = 192;

/// The crop around `lesion` in its RECIST slice: `[y0, y1) × [x0, x1)` voxels.
fn crop_box(lesion: &Lesion, shape: [usize; 3], spacing_mm: [f64; 3]) -> [usize; 4] {
    let [_, by, bx] = lesion.bounding_box;
    let half = |b: [usize; 2], s: f64, n: usize| {
        let c = (b[0] + b[1]) as f64 / 2.0;
        let ext_mm = ((b[1] - b[0]) as f64 * s * 2.0).max(MIN_FOV_MM);
        let h = ext_mm / s / 2.0;
        [(c - h).floor().max(0.0) as usize, ((c + h).ceil() as usize).min(n)]
    };
    let y = half(by, spacing_mm[1], shape[1]);
    let x = half(bx, spacing_mm[2], shape[2]);
    [y[0], y[1], x[0], x[1]]
}

/// One PNG per phase (same crop in each), as encoded bytes.
pub fn key_images(lesion: &Lesion, mask: &Mask, lesion_label: u8, phases: &[&CtVolume]) -> Vec<Vec<u8>> {
    let g = &mask.geometry;
    let k = lesion.recist.slice.min(g.shape[0].saturating_sub(1));
    let [y0, y1, x0, x1] = crop_box(lesion, g.shape, g.spacing_mm);
    let (h, w) = (y1 - y0, x1 - x0);
    if h == 0 || w == 0 {
        return Vec::new();
    }
    // Square pixels on screen even when the in-plane spacing differs between axes.
    let (h_mm, w_mm) = (h as f64 * g.spacing_mm[1], w as f64 * g.spacing_mm[2]);
    let scale = SIZE_PX as f64 / h_mm.max(w_mm);
    let (out_h, out_w) = (((h_mm * scale).round() as u32).max(1), ((w_mm * scale).round() as u32).max(1));
    let (ww, wl) = KEY_WINDOW_HU;
    let lo = wl - ww / 2.0;
    // Voxel of each output pixel, and whether it is lesion: the outline is drawn on output
    // pixels, so it stays one pixel thin however coarse the voxels are.
    let voxel_of = |px: u32, py: u32| {
        let j = (y0 + ((py as f64 + 0.5) / out_h as f64 * h as f64) as usize).min(y1 - 1);
        let i = (x0 + ((px as f64 + 0.5) / out_w as f64 * w as f64) as usize).min(x1 - 1);
        (j, i)
    };
    let inside: Vec<bool> = (0..out_h * out_w)
        .map(|n| {
            let (j, i) = voxel_of(n % out_w, n / out_w);
            mask.data[[k, j, i]] == lesion_label
        })
        .collect();
    let at = |px: i64, py: i64| {
        px >= 0 && py >= 0 && px < out_w as i64 && py < out_h as i64 && inside[(py as u32 * out_w + px as u32) as usize]
    };
    phases
        .iter()
        .map(|v| {
            let mut img = RgbImage::new(out_w, out_h);
            for (px, py, pixel) in img.enumerate_pixels_mut() {
                let (j, i) = voxel_of(px, py);
                let hu = v.data[[k, j, i]] as f32;
                let grey = (((hu - lo) / ww).clamp(0.0, 1.0) * 255.0) as u8;
                let (x, y) = (px as i64, py as i64);
                let edge = at(x, y) && !(at(x - 1, y) && at(x + 1, y) && at(x, y - 1) && at(x, y + 1));
                *pixel = if edge { Rgb([255, 200, 0]) } else { Rgb([grey, grey, grey]) };
            }
            let to_px = |p: Lps| {
                let ijk = g.world_to_index(p);
                (
                    ((ijk[0] - x0 as f64 + 0.5) / w as f64 * out_w as f64) as f32,
                    ((ijk[1] - y0 as f64 + 0.5) / h as f64 * out_h as f64) as f32,
                )
            };
            draw_line(
                &mut img,
                to_px(lesion.recist.long_axis_ends_mm[0]),
                to_px(lesion.recist.long_axis_ends_mm[1]),
                Rgb([0, 220, 255]),
            );
            draw_line(
                &mut img,
                to_px(lesion.recist.short_axis_ends_mm[0]),
                to_px(lesion.recist.short_axis_ends_mm[1]),
                Rgb([120, 255, 120]),
            );
            let mut png = Vec::new();
            // Writing a PNG into memory cannot fail for an RGB8 image of non-zero size.
            let _ = img.write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png);
            png
        })
        .collect()
}

/// A one-pixel line, clipped to the image.
fn draw_line(img: &mut RgbImage, a: (f32, f32), b: (f32, f32), colour: Rgb<u8>) {
    let n = ((b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil() as usize).clamp(1, 4096);
    for s in 0..=n {
        let t = s as f32 / n as f32;
        let (x, y) = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
        if x >= 0.0 && y >= 0.0 && (x as u32) < img.width() && (y as u32) < img.height() {
            img.put_pixel(x as u32, y as u32, colour);
        }
    }
}
