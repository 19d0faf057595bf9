//! The U-Net run over a stack of axial slices in batches, with progress and cancel: shared by
//! the first network (`infer`) and the tumour stage.

use ndarray::{s, Array4};

use super::folded::FoldedUNet;
use super::model::UNet;
use super::SegmentError;
use crate::volume::Progress;

/// Softmax probabilities `[nz, classes, h, w]` for windowed input `[nz, 3, h, w]`, in
/// batches of `batch` slices, reporting after each batch and handing each batch's
/// probabilities `[n, classes, h, w]` and its first slice to `each` as soon as they are
/// ready. Runs the hand-written kernels of [`FoldedUNet`], not candle's ops (same numbers,
/// several times faster on the CPU).
pub fn predict_slices(
    model: &UNet,
    input: &Array4<f32>,
    batch: usize,
    progress: Progress,
    each: &dyn Fn(usize, &Array4<f32>),
) -> Result<Array4<f32>, SegmentError> {
    let (nz, _, h, w) = input.dim();
    let classes = model.config.classes;
    let mut out = Array4::<f32>::zeros((nz, classes, h, w));
    let batch = batch.max(1);
    let folded = FoldedUNet::new(model)?;
    let mut k = 0;
    while k < nz {
        let n = batch.min(nz - k);
        let chunk = input.slice(s![k..k + n, .., .., ..]);
        let data: Vec<f32> = chunk.iter().copied().collect();
        let v = folded.probabilities(&data, n, h, w)?;
        let p = Array4::from_shape_vec((n, classes, h, w), v).map_err(|e| SegmentError::Model(e.to_string()))?;
        each(k, &p);
        out.slice_mut(s![k..k + n, .., .., ..]).assign(&p);
        k += n;
        if !progress(0.95 * k as f32 / nz as f32, &format!("U-Net: slice {k}/{nz}")) {
            return Err(SegmentError::Cancelled);
        }
    }
    Ok(out)
}
