//! `hepaview screenshot`: the viewer drawn off-screen to a PNG.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use hepaview::app;
use hepaview::app::screenshot::ScreenshotOptions;
use hepaview::app::view::{Layout, WindowLevel};
use hepaview::phantom;
use hepaview::study::Study;

/// `screenshot --layout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LayoutArg {
    /// Phases side by side, axial.
    Row,
    /// Phases × axial, coronal, sagittal.
    Grid,
    /// One view.
    Single,
}

/// `screenshot --window`: the viewer's window/level presets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum WindowArg {
    Liver,
    Abdomen,
    Bone,
    Lung,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// A DICOM folder or NIfTI files; the demo study when none.
    pub paths: Vec<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    /// How the phases are laid out.
    #[arg(long, value_enum, default_value_t = LayoutArg::Row)]
    pub layout: LayoutArg,
    /// Axial slice position (LPS z, mm); default the middle of the portal venous phase.
    #[arg(long)]
    pub slice_mm: Option<f64>,
    /// Window preset (default: each phase's own).
    #[arg(long, value_enum)]
    pub window: Option<WindowArg>,
    /// Size in pixels, WIDTHxHEIGHT.
    #[arg(long, default_value = "1600x900")]
    pub size: String,
}

pub(crate) fn run(a: Args) -> Result<()> {
    let Args { paths, out, layout, slice_mm, window, size } = a;
    if hepaview::io::taken(&out) {
        bail!("{} already exists; choose another output name (Hepaview never overwrites files)", out.display());
    }
    if !out.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        bail!("{}: screenshots are written as PNG; give a name ending in .png", out.display());
    }
    let layout = match layout {
        LayoutArg::Row => Layout::Row,
        LayoutArg::Grid => Layout::Grid,
        LayoutArg::Single => Layout::Single,
    };
    let window = match window {
        None => None,
        Some(w) => {
            let name = w.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
            Some(
                WindowLevel::PRESETS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, wl)| *wl)
                    .with_context(|| format!("--window {name}: no such preset"))?,
            )
        }
    };
    let (w, h) =
        size.split_once('x').with_context(|| format!("--size {size:?}: expected WIDTHxHEIGHT, e.g. 1600x900"))?;
    let size = [w.parse::<f32>().context("--size width")?, h.parse::<f32>().context("--size height")?];
    let study = if paths.is_empty() { Study::demo(&phantom::PhantomOptions::default()) } else { Study::open(&paths)? };
    let opts = ScreenshotOptions { size, layout, z_mm: slice_mm, window, ..Default::default() };
    let img = app::screenshot::render(study, &opts).map_err(|e| anyhow::anyhow!("off-screen rendering failed: {e}"))?;
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).with_context(|| format!("encoding {}", out.display()))?;
    hepaview::io::write_new_file(&out, png.get_ref()).with_context(|| format!("writing {}", out.display()))?;
    println!("{} ({}×{})", out.display(), img.width(), img.height());
    Ok(())
}
