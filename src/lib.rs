//! Hepaview: a liver CT viewer with on-device AI assist. The library does all the work; the
//! binary (`src/main.rs`) is only the CLI and the app's entry point. See `DESIGN.md` in the
//! shared folder for the layering: a module uses those on its own line or below it, never
//! above:
//! - `cli` (in the binary) and [`app`]: thin: parse, call, print or draw; widget state only
//!   (`app::gpu` owns every wgpu object: slices, 3D surfaces, volume rendering).
//! - [`study`]: the open study (phases, labels), jobs with progress ([`study::job`]), its
//!   registrations written once ([`study::registration`]: every moving phase onto the fixed
//!   one, for the CLI, the viewer, the recipes and segmentation), segmentation of its phases
//!   ([`study::segment`]), the edit document
//!   ([`study::edits`]: undo history, autosave session, label table), the follow-up visits
//!   as values ([`study::visits`]), their comparison with the baseline ([`study::compare`])
//!   and its reading ([`study::reading`]); [`study::analysis`]: the recipes the CLI and
//!   the viewer share (phases onto a mask's grid, cluster, measure, align visits).
//! - one folder or file per feature: [`io`] (DICOM, NIfTI, SEG, phase naming),
//!   [`register`] (Demons, affine, and [`register::aligned`]: a phase on an analysis grid),
//!   [`segment`], [`outline`], [`cluster`] (k-means, features), [`lesion`] (measurements,
//!   pattern hint), [`edit`], [`mesh`], [`follow_up`] (pairing, RECIST / mRECIST, the
//!   comparison of two visits, the lesion table, the simulator), [`report`], [`render`]
//!   (the 3-D view's maths), [`phantom`] (the demo study).
//! - [`volume`]: `Volume<T>`, `Geometry`, resampling, reslicing, and [`volume::region`], the
//!   region helpers every module shares (voxel box, components, distance transform, dilation
//!   in mm, voxel volume), the one progress callback ([`volume::Progress`]), the one
//!   SplitMix generator ([`volume::random`]) and GPU upload keys ([`volume::next_key`]).

// Small fixed-size geometry maths (3×3 matrices, xyz triples) reads clearer indexed.
#![allow(clippy::needless_range_loop)]

pub mod app;
pub mod cluster;
pub mod edit;
pub mod follow_up;
#[doc(hidden)]
pub mod fuzzing;
pub mod io;
pub mod lesion;
pub mod mesh;
pub mod outline;
pub mod phantom;
pub mod register;
pub mod render;
pub mod report;
pub mod segment;
pub mod study;
pub mod volume;

pub use volume::{CtVolume, Field, Geometry, Interp, Mask, Volume};

/// `hepaview::response` as callers outside the crate (tests) have named it.
pub use follow_up::response;
