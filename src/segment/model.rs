//! The U-Net: a plain struct over candle-nn layers, the same shape as the PyTorch anchor
//! (`../shared/anchors/unet_torch.py`) so the two can be timed side by side: per level
//! [conv3×3 (no bias) → BatchNorm → ReLU] × 2, max-pool 2×2 between levels, transposed conv
//! 2×2 stride 2 up, concat [skip, up], the same double conv, and a 1×1 head.

use candle_core::{ModuleT, Result, Tensor};
use candle_nn::{batch_norm, init, BatchNorm, BatchNormConfig, VarBuilder};

/// Shape of the network and the grid it was trained on; stored beside the weights (see
/// `weights.rs`) so a file says what it is.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UNetConfig {
    /// Channels per level, top to bottom (the last one is the bottleneck).
    pub features: Vec<usize>,
    /// Input channels: arterial, portal venous, delayed (missing phases filled, see
    /// `preprocess`).
    pub in_channels: usize,
    /// Output classes: background, liver, tumour.
    pub classes: usize,
    /// In-plane pixel size the slices are resampled to, mm.
    pub spacing_mm: f64,
    /// Trained with every subset of the phases, each in its own channel (arterial alone,
    /// delayed alone, …): inference feeds the phases a study has as they are. Without it
    /// the network saw portal venous in every sample, and a study lacking it is fed
    /// through portal venous's channel (`segment::infer`).
    #[serde(default)]
    pub any_phase_subset: bool,
}

impl Default for UNetConfig {
    /// Small enough to train on two shared CPU cores in well under an hour at 4 mm (96² =
    /// 384 mm field of view); the anchor's 32…512 is about 50× the arithmetic per pixel.
    fn default() -> Self {
        UNetConfig {
            features: vec![8, 16, 32, 64],
            in_channels: 3,
            classes: 3,
            spacing_mm: 4.0,
            any_phase_subset: false,
        }
    }
}

impl UNetConfig {
    /// Slice sides must be a multiple of this (one halving per pooling).
    pub fn size_multiple(&self) -> usize {
        1 << (self.features.len().saturating_sub(1))
    }
}

/// A k×k convolution (stride 1, "same" padding) with PyTorch's weight layout
/// `[out, in, k, k]`. Inference uses candle's conv2d; training computes the same thing as
/// shifted copies + one matrix product, because candle's CPU backward of conv2d computes
/// the kernel gradient as a convolution with an image-sized kernel, about 20× slower than
/// the matrix product whose backward is two more matrix products.
#[derive(Debug)]
pub struct Conv {
    pub(super) weight: Tensor,
    pub(super) bias: Option<Tensor>,
    k: usize,
}

impl Conv {
    pub fn new(vb: VarBuilder, cin: usize, cout: usize, k: usize, bias: bool) -> Result<Self> {
        let weight = vb.get_with_hints((cout, cin, k, k), "weight", init::DEFAULT_KAIMING_NORMAL)?;
        let bias = if bias { Some(vb.get_with_hints(cout, "bias", init::ZERO)?) } else { None };
        Ok(Conv { weight, bias, k })
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let y = if train { self.forward_matmul(x)? } else { x.conv2d(&self.weight, self.k / 2, 1, 1, 1)? };
        match &self.bias {
            Some(b) => y.broadcast_add(&b.reshape((1, (), 1, 1))?),
            None => Ok(y),
        }
    }

    /// im2col by shifted views: columns ordered (dy, dx, channel), so the weight becomes
    /// `[out, k·k·in]` after moving its channel axis last.
    pub fn forward_matmul(&self, x: &Tensor) -> Result<Tensor> {
        let (b, cin, h, w) = x.dims4()?;
        let (cout, k) = (self.weight.dim(0)?, self.k);
        let cols = if k == 1 {
            x.reshape((b, cin, h * w))?
        } else {
            let p = k / 2;
            let xp = x.pad_with_zeros(2, p, p)?.pad_with_zeros(3, p, p)?;
            let mut shifts = Vec::with_capacity(k * k);
            for dy in 0..k {
                for dx in 0..k {
                    shifts.push(xp.narrow(2, dy, h)?.narrow(3, dx, w)?);
                }
            }
            Tensor::cat(&shifts, 1)?.reshape((b, k * k * cin, h * w))?
        };
        let wm = self.weight.permute((0, 2, 3, 1))?.reshape((cout, k * k * cin))?;
        wm.broadcast_left(b)?.matmul(&cols)?.reshape((b, cout, h, w))
    }
}

/// Transposed convolution 2×2, stride 2 (the upsampling step), weight `[in, out, 2, 2]` as
/// PyTorch's: each input pixel spreads to a 2×2 block, which is one matrix product and a
/// reshuffle (fast backward, see [`Conv`]).
#[derive(Debug)]
pub struct Up {
    pub(super) weight: Tensor,
    pub(super) bias: Tensor,
}

impl Up {
    fn new(vb: VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        let weight = vb.get_with_hints((cin, cout, 2, 2), "weight", init::DEFAULT_KAIMING_NORMAL)?;
        let bias = vb.get_with_hints(cout, "bias", init::ZERO)?;
        Ok(Up { weight, bias })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, cin, h, w) = x.dims4()?;
        let cout = self.weight.dim(1)?;
        let xm = x.reshape((b, cin, h * w))?.transpose(1, 2)?; // [b, hw, in]
        let wm = self.weight.reshape((cin, cout * 4))?;
        let y = xm.broadcast_matmul(&wm)?; // [b, hw, out·2·2]
        let y = y.reshape((b, h, w, cout, 2, 2))?.permute((0, 3, 1, 4, 2, 5))?.reshape((b, cout, 2 * h, 2 * w))?;
        y.broadcast_add(&self.bias.reshape((1, cout, 1, 1))?)
    }
}

/// [conv3×3 → BN → ReLU] × 2.
#[derive(Debug)]
pub(super) struct DoubleConv {
    pub(super) c1: Conv,
    pub(super) b1: BatchNorm,
    pub(super) c2: Conv,
    pub(super) b2: BatchNorm,
}

impl DoubleConv {
    fn new(vb: VarBuilder, cin: usize, cout: usize) -> Result<Self> {
        let bn = BatchNormConfig { eps: 1e-5, remove_mean: true, affine: true, momentum: 0.1 };
        Ok(DoubleConv {
            c1: Conv::new(vb.pp("conv1"), cin, cout, 3, false)?,
            b1: batch_norm(cout, bn, vb.pp("bn1"))?,
            c2: Conv::new(vb.pp("conv2"), cout, cout, 3, false)?,
            b2: batch_norm(cout, bn, vb.pp("bn2"))?,
        })
    }

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.b1.forward_t(&self.c1.forward(x, train)?, train)?.relu()?;
        self.b2.forward_t(&self.c2.forward(&x, train)?, train)?.relu()
    }
}

/// The network. `forward` takes `[batch, in_channels, h, w]` (h, w multiples of
/// [`UNetConfig::size_multiple`]) and gives logits `[batch, classes, h, w]`.
#[derive(Debug)]
pub struct UNet {
    pub(super) down: Vec<DoubleConv>,
    pub(super) up: Vec<Up>,
    pub(super) dec: Vec<DoubleConv>,
    pub(super) head: Conv,
    pub config: UNetConfig,
}

impl UNet {
    /// Builds the layers from `vb`: fresh variables from a `VarMap` when training, or the
    /// tensors of a weights file (see `weights::load_unet`). Tensor names:
    /// `down.{i}.conv1.weight`, `down.{i}.bn1.running_mean`, `up.{i}.weight`, `dec.{i}…`,
    /// `head.weight`.
    pub fn new(vb: VarBuilder, config: &UNetConfig) -> Result<Self> {
        let f = &config.features;
        if f.is_empty() || config.in_channels == 0 || config.classes == 0 {
            candle_core::bail!("U-Net config needs at least one level, one input channel and one class: {config:?}");
        }
        let mut down = Vec::new();
        let mut cin = config.in_channels;
        for (i, &c) in f.iter().enumerate() {
            down.push(DoubleConv::new(vb.pp(format!("down.{i}")), cin, c)?);
            cin = c;
        }
        let mut up = Vec::new();
        let mut dec = Vec::new();
        for (i, w) in f.windows(2).rev().enumerate() {
            let (lo, hi) = (w[0], w[1]);
            up.push(Up::new(vb.pp(format!("up.{i}")), hi, lo)?);
            dec.push(DoubleConv::new(vb.pp(format!("dec.{i}")), 2 * lo, lo)?);
        }
        let head = Conv::new(vb.pp("head"), f[0], config.classes, 1, true)?;
        Ok(UNet { down, up, dec, head, config: config.clone() })
    }

    /// Logits. `train`: BatchNorm on batch statistics (and updating its running ones).
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        let m = self.config.size_multiple();
        if c != self.config.in_channels || h % m != 0 || w % m != 0 {
            candle_core::bail!(
                "U-Net input {:?}: needs {} channels and sides that are multiples of {m}",
                x.dims(),
                self.config.in_channels
            );
        }
        let mut skips = Vec::with_capacity(self.down.len());
        let mut x = x.clone();
        let last = self.down.len() - 1;
        for (i, block) in self.down.iter().enumerate() {
            x = block.forward(&x, train)?;
            if i < last {
                skips.push(x.clone());
                x = x.max_pool2d(2)?;
            }
        }
        for ((up, dec), skip) in self.up.iter().zip(&self.dec).zip(skips.iter().rev()) {
            let u = up.forward(&x)?;
            x = dec.forward(&Tensor::cat(&[skip, &u], 1)?, train)?;
        }
        self.head.forward(&x, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    /// The training path (shifted copies + matmul) is the same convolution as candle's.
    #[test]
    fn matmul_conv_equals_conv2d() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let x = Tensor::randn(0f32, 1.0, (2, 5, 12, 10), &Device::Cpu).unwrap();
        for k in [1, 3] {
            let c = Conv::new(vb.pp(format!("c{k}")), 5, 7, k, true).unwrap();
            let a = c.forward(&x, false).unwrap();
            let b = c.forward(&x, true).unwrap();
            let d: f32 = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(d < 1e-4, "k={k}: max difference {d}");
        }
    }

    /// `Up` matches candle's conv_transpose2d with PyTorch's weight layout.
    #[test]
    fn up_equals_conv_transpose2d() {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let up = Up::new(vb, 6, 3).unwrap();
        let bias = Tensor::new(&[0.5f32, -1.0, 2.0], &Device::Cpu).unwrap();
        let up = Up { weight: up.weight, bias };
        let x = Tensor::randn(0f32, 1.0, (2, 6, 5, 4), &Device::Cpu).unwrap();
        let a = up.forward(&x).unwrap();
        let b = x
            .conv_transpose2d(&up.weight, 0, 0, 2, 1)
            .unwrap()
            .broadcast_add(&up.bias.reshape((1, 3, 1, 1)).unwrap())
            .unwrap();
        assert_eq!(a.dims(), &[2, 3, 10, 8]);
        let d: f32 = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        assert!(d < 1e-4, "max difference {d}");
    }
}
