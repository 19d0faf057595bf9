//! A phase brought onto an analysis grid, by registration onto the fixed phase or by plain
//! resampling: what clustering, lesion measurement and the reports read. The type lives
//! here, below the study, so that `report` can name it without reaching up into `study`
//! (which makes them, in `study::analysis::align_phases`).

use std::sync::Arc;

use crate::io::phase::Phase;
use crate::volume::{CtVolume, Mask};

/// One phase on the analysis grid.
#[derive(Clone)]
pub struct AlignedPhase {
    pub phase: Phase,
    pub description: String,
    pub volume: Arc<CtVolume>,
    /// True when it went through a registration (false for the fixed phase itself).
    pub registered: bool,
    /// Voxels of the grid where this phase has data (1) or was filled in (0): scans cover
    /// different slabs, and a filled-in value is not tissue. `None`: covers the whole grid.
    pub coverage: Option<Arc<Mask>>,
}
