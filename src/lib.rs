//! Hepaview: a liver CT viewer with on-device AI assist. The library does all the work; the
//! binary (`src/main.rs`) is only the CLI and the app's entry point. See `DESIGN.md` in the
//! shared folder for the layering: `volume` at the bottom, `io`/`phantom`/algorithms above
//! it, `study` above those, `cli`/`app` on top.

// Small fixed-size geometry maths (3×3 matrices, xyz triples) reads clearer indexed.
#![allow(clippy::needless_range_loop)]

pub mod analysis;
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
