//! Inference on the CPU without candle's general-purpose ops: the trained U-Net with each
//! BatchNorm folded into the convolution before it, run by hand-written kernels.
//!
//! Why: candle's CPU conv2d is im2col + matrix product, and BatchNorm, ReLU, pooling and
//! concatenation are each a separate single-threaded pass over the activations. For this
//! network's few channels (8…64) that is memory traffic, not arithmetic: on the same two
//! cores PyTorch ran the shipped network 6.8× faster (`docs/benchmarks.md`). Here a 3×3
//! convolution accumulates 8 output channels × 8 pixels in registers over every input
//! channel and tap, adds the folded bias and clamps at zero in the same pass; images and
//! channel blocks run in parallel. Layout NCHW, f32, the same numbers as
//! `UNet::forward(x, false)` up to rounding (checked by a test).

use candle_core::Tensor;
use rayon::prelude::*;

use super::model::{Conv, DoubleConv, UNet, Up};
use super::SegmentError;

/// Output channels computed together by the 3×3 kernel (one register each per 8 pixels).
const CO_BLOCK: usize = 8;
/// Pixels per register row.
const LANES: usize = 8;

/// A 3×3 convolution with BatchNorm folded in: weights reordered
/// `[co_block][ci][ky][kx][8]` (zero-padded past `cout`), bias per output channel.
#[derive(Debug, Clone)]
struct Conv3 {
    cin: usize,
    cout: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// The 2×2 stride-2 transposed convolution, weight `[cin][cout][2][2]` as stored.
#[derive(Debug, Clone)]
struct Up2 {
    cin: usize,
    cout: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// The 1×1 head, weight `[cout][cin]`.
#[derive(Debug, Clone)]
struct Head {
    cin: usize,
    cout: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// The U-Net ready for inference on the CPU.
#[derive(Debug, Clone)]
pub struct FoldedUNet {
    down: Vec<[Conv3; 2]>,
    up: Vec<Up2>,
    dec: Vec<[Conv3; 2]>,
    head: Head,
    in_channels: usize,
    multiple: usize,
}

fn values(t: &Tensor) -> Result<Vec<f32>, SegmentError> {
    Ok(t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1::<f32>()?)
}

fn fold(conv: &Conv, bn: &candle_nn::BatchNorm) -> Result<Conv3, SegmentError> {
    let (cout, cin, k, _) = conv.weight.dims4()?;
    if k != 3 {
        return Err(SegmentError::Model(format!("folded inference expects 3×3 convolutions, found {k}×{k}")));
    }
    let w = values(&conv.weight)?;
    let mean = values(bn.running_mean())?;
    let var = values(bn.running_var())?;
    let (gamma, beta) = match bn.weight_and_bias() {
        Some((g, b)) => (values(g)?, values(b)?),
        None => (vec![1.0; cout], vec![0.0; cout]),
    };
    let conv_bias = match &conv.bias {
        Some(b) => values(b)?,
        None => vec![0.0; cout],
    };
    let blocks = cout.div_ceil(CO_BLOCK);
    let mut weight = vec![0f32; blocks * cin * 9 * CO_BLOCK];
    let mut bias = vec![0f32; cout];
    for co in 0..cout {
        let scale = gamma[co] / (var[co] + bn.eps() as f32).sqrt();
        bias[co] = (conv_bias[co] - mean[co]) * scale + beta[co];
        let (b, c) = (co / CO_BLOCK, co % CO_BLOCK);
        for ci in 0..cin {
            for t in 0..9 {
                weight[((b * cin + ci) * 9 + t) * CO_BLOCK + c] = w[(co * cin + ci) * 9 + t] * scale;
            }
        }
    }
    Ok(Conv3 { cin, cout, weight, bias })
}

fn fold_double(d: &DoubleConv) -> Result<[Conv3; 2], SegmentError> {
    Ok([fold(&d.c1, &d.b1)?, fold(&d.c2, &d.b2)?])
}

impl FoldedUNet {
    /// Copies the weights out of `model`, folding each BatchNorm's running statistics into
    /// the convolution before it.
    pub fn new(model: &UNet) -> Result<Self, SegmentError> {
        let down = model.down.iter().map(fold_double).collect::<Result<Vec<_>, _>>()?;
        let dec = model.dec.iter().map(fold_double).collect::<Result<Vec<_>, _>>()?;
        let up = model
            .up
            .iter()
            .map(|u: &Up| {
                let (cin, cout, _, _) = u.weight.dims4()?;
                Ok(Up2 { cin, cout, weight: values(&u.weight)?, bias: values(&u.bias)? })
            })
            .collect::<Result<Vec<_>, SegmentError>>()?;
        let (cout, cin, _, _) = model.head.weight.dims4()?;
        let head_bias = match &model.head.bias {
            Some(b) => values(b)?,
            None => vec![0.0; cout],
        };
        let head = Head { cin, cout, weight: values(&model.head.weight)?, bias: head_bias };
        Ok(FoldedUNet { down, up, dec, head, in_channels: model.config.in_channels, multiple: model.config.size_multiple() })
    }

    /// Class probabilities `[n, classes, h, w]` (softmax over the classes) for NCHW input
    /// `x` of `n` slices of `h` × `w`.
    pub fn probabilities(&self, x: &[f32], n: usize, h: usize, w: usize) -> Result<Vec<f32>, SegmentError> {
        if x.len() != n * self.in_channels * h * w || h % self.multiple != 0 || w % self.multiple != 0 {
            return Err(SegmentError::Model(format!(
                "U-Net input of {} values for {n} slices of {h} × {w}: needs {} channels and sides that are multiples of {}",
                x.len(),
                self.in_channels,
                self.multiple
            )));
        }
        let mut p = self.logits(x, n, h, w);
        let (classes, hw) = (self.head.cout, h * w);
        p.par_chunks_mut(classes * hw).for_each(|img| {
            for i in 0..hw {
                let max = (0..classes).map(|c| img[c * hw + i]).fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0;
                for c in 0..classes {
                    let e = (img[c * hw + i] - max).exp();
                    img[c * hw + i] = e;
                    sum += e;
                }
                for c in 0..classes {
                    img[c * hw + i] /= sum;
                }
            }
        });
        Ok(p)
    }

    /// Logits `[n, classes, h, w]` for NCHW input `x`.
    pub fn logits(&self, x: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
        let mut skips = Vec::with_capacity(self.down.len());
        let (mut act, mut hh, mut ww) = (Vec::new(), h, w);
        let last = self.down.len() - 1;
        for (i, [c1, c2]) in self.down.iter().enumerate() {
            let input: &[f32] = if i == 0 { x } else { &act };
            act = conv3_relu(&conv3_relu(input, n, hh, ww, c1), n, hh, ww, c2);
            if i < last {
                skips.push((act.clone(), c2.cout));
                act = max_pool2(&act, n, c2.cout, hh, ww);
                hh /= 2;
                ww /= 2;
            }
        }
        for ((up, [c1, c2]), (skip, skip_c)) in self.up.iter().zip(&self.dec).zip(skips.iter().rev()) {
            let u = up2(&act, n, hh, ww, up);
            hh *= 2;
            ww *= 2;
            let cat = concat(skip, *skip_c, &u, up.cout, n, hh * ww);
            act = conv3_relu(&conv3_relu(&cat, n, hh, ww, c1), n, hh, ww, c2);
        }
        head(&act, n, hh * ww, &self.head)
    }
}

/// 3×3 "same" convolution + bias + ReLU over `n` images.
fn conv3_relu(x: &[f32], n: usize, h: usize, w: usize, conv: &Conv3) -> Vec<f32> {
    conv3_relu_isa(Isa::detect(), x, n, h, w, conv)
}

fn conv3_relu_isa(isa: Isa, x: &[f32], n: usize, h: usize, w: usize, conv: &Conv3) -> Vec<f32> {
    let (cin, cout) = (conv.cin, conv.cout);
    // Zero border of one pixel, and the width rounded up so every row is whole registers.
    let wr = w.div_ceil(LANES) * LANES;
    let (ph, pw) = (h + 2, wr + 2);
    let mut padded = vec![0f32; n * cin * ph * pw];
    padded.par_chunks_mut(ph * pw).zip(x.par_chunks(h * w)).for_each(|(p, plane)| {
        for y in 0..h {
            p[(y + 1) * pw + 1..(y + 1) * pw + 1 + w].copy_from_slice(&plane[y * w..(y + 1) * w]);
        }
    });
    let blocks = cout.div_ceil(CO_BLOCK);
    // Rows of accumulators, one per (image, block of output channels, row), each
    // `[CO_BLOCK][wr]`; then bias, ReLU and the NCHW layout in a second parallel pass.
    let mut blocked = vec![0f32; n * blocks * h * CO_BLOCK * wr];
    blocked.par_chunks_mut(CO_BLOCK * wr).enumerate().for_each(|(t, row)| {
        let (i, b, y) = (t / (blocks * h), (t / h) % blocks, t % h);
        let img = &padded[i * cin * ph * pw..(i + 1) * cin * ph * pw];
        let wb = &conv.weight[b * cin * 9 * CO_BLOCK..(b + 1) * cin * 9 * CO_BLOCK];
        conv3_row(isa, img, wb, cin, pw, ph, y, wr, row);
    });
    let mut out = vec![0f32; n * cout * h * w];
    out.par_chunks_mut(h * w).enumerate().for_each(|(ic, plane)| {
        let (i, co) = (ic / cout, ic % cout);
        let (b, c) = (co / CO_BLOCK, co % CO_BLOCK);
        let bias = conv.bias[co];
        for y in 0..h {
            let src = &blocked[(((i * blocks + b) * h + y) * CO_BLOCK + c) * wr..][..w];
            for (d, &v) in plane[y * w..(y + 1) * w].iter_mut().zip(src) {
                *d = (v + bias).max(0.0);
            }
        }
    });
    out
}

/// Which vector instructions the kernel runs with, checked at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Avx2,
    Portable,
}

impl Isa {
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }
}

/// One output row `y` of one block of output channels: `row[c * wr + x]`, before bias and
/// ReLU.
#[allow(clippy::too_many_arguments)]
fn conv3_row(isa: Isa, img: &[f32], wb: &[f32], cin: usize, pw: usize, ph: usize, y: usize, wr: usize, row: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` found AVX2 and FMA on this CPU.
        Isa::Avx2 => unsafe { conv3_row_avx2(img, wb, cin, pw, ph, y, wr, row) },
        _ => conv3_row_body(img, wb, cin, pw, ph, y, wr, row),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn conv3_row_avx2(img: &[f32], wb: &[f32], cin: usize, pw: usize, ph: usize, y: usize, wr: usize, row: &mut [f32]) {
    conv3_row_body(img, wb, cin, pw, ph, y, wr, row);
}

/// The micro-kernel: 8 channels × 8 pixels of accumulators, fed by one load of 8 input
/// pixels per (input channel, tap); written so the compiler keeps `acc` in registers.
/// (A variant with 16-pixel AVX-512 accumulators and direct NCHW writes measured 7× slower
/// on the same machine; not investigated further, so this one stays.)
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn conv3_row_body(img: &[f32], wb: &[f32], cin: usize, pw: usize, ph: usize, y: usize, wr: usize, row: &mut [f32]) {
    let mut x0 = 0;
    while x0 < wr {
        let mut acc = [[0f32; LANES]; CO_BLOCK];
        for ci in 0..cin {
            let plane = &img[ci * ph * pw..(ci + 1) * ph * pw];
            let wc = &wb[ci * 9 * CO_BLOCK..(ci + 1) * 9 * CO_BLOCK];
            for ky in 0..3 {
                let src = &plane[(y + ky) * pw + x0..(y + ky) * pw + x0 + LANES + 2];
                for kx in 0..3 {
                    let v: [f32; LANES] = std::array::from_fn(|l| src[kx + l]);
                    let wt = &wc[(ky * 3 + kx) * CO_BLOCK..(ky * 3 + kx + 1) * CO_BLOCK];
                    for c in 0..CO_BLOCK {
                        for l in 0..LANES {
                            acc[c][l] = wt[c].mul_add(v[l], acc[c][l]);
                        }
                    }
                }
            }
        }
        for c in 0..CO_BLOCK {
            row[c * wr + x0..c * wr + x0 + LANES].copy_from_slice(&acc[c]);
        }
        x0 += LANES;
    }
}

fn max_pool2(x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut out = vec![0f32; n * c * oh * ow];
    out.par_chunks_mut(oh * ow).zip(x.par_chunks(h * w)).for_each(|(o, p)| {
        for y in 0..oh {
            for xx in 0..ow {
                let a = p[2 * y * w + 2 * xx].max(p[2 * y * w + 2 * xx + 1]);
                let b = p[(2 * y + 1) * w + 2 * xx].max(p[(2 * y + 1) * w + 2 * xx + 1]);
                o[y * ow + xx] = a.max(b);
            }
        }
    });
    out
}

/// Transposed 2×2 stride-2 convolution: each input pixel spreads to a 2×2 block.
fn up2(x: &[f32], n: usize, h: usize, w: usize, up: &Up2) -> Vec<f32> {
    let (cin, cout) = (up.cin, up.cout);
    let (oh, ow) = (2 * h, 2 * w);
    let mut out = vec![0f32; n * cout * oh * ow];
    out.par_chunks_mut(oh * ow).enumerate().for_each(|(ic, o)| {
        let (i, co) = (ic / cout, ic % cout);
        o.fill(up.bias[co]);
        for ci in 0..cin {
            let p = &x[(i * cin + ci) * h * w..(i * cin + ci + 1) * h * w];
            let k = &up.weight[(ci * cout + co) * 4..(ci * cout + co + 1) * 4];
            for y in 0..h {
                for a in 0..2 {
                    let dst = &mut o[(2 * y + a) * ow..(2 * y + a + 1) * ow];
                    let (k0, k1) = (k[a * 2], k[a * 2 + 1]);
                    for (xx, &v) in p[y * w..(y + 1) * w].iter().enumerate() {
                        dst[2 * xx] += k0 * v;
                        dst[2 * xx + 1] += k1 * v;
                    }
                }
            }
        }
    });
    out
}

/// `[skip; up]` along the channels, per image.
fn concat(a: &[f32], ca: usize, b: &[f32], cb: usize, n: usize, hw: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * (ca + cb) * hw);
    for i in 0..n {
        out.extend_from_slice(&a[i * ca * hw..(i + 1) * ca * hw]);
        out.extend_from_slice(&b[i * cb * hw..(i + 1) * cb * hw]);
    }
    out
}

fn head(x: &[f32], n: usize, hw: usize, head: &Head) -> Vec<f32> {
    let (cin, cout) = (head.cin, head.cout);
    let mut out = vec![0f32; n * cout * hw];
    out.par_chunks_mut(hw).enumerate().for_each(|(ic, o)| {
        let (i, co) = (ic / cout, ic % cout);
        o.fill(head.bias[co]);
        for ci in 0..cin {
            let wv = head.weight[co * cin + ci];
            for (d, &v) in o.iter_mut().zip(&x[(i * cin + ci) * hw..(i * cin + ci + 1) * hw]) {
                *d += wv * v;
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment::model::UNetConfig;
    use candle_core::{DType, Device};
    use candle_nn::{VarBuilder, VarMap};

    /// The folded kernels give the same probabilities as candle's eval-mode forward, with
    /// BatchNorm statistics that are not the identity, on a width that is not a multiple
    /// of the register width at the deepest level.
    #[test]
    fn folded_matches_candle() {
        let vm = VarMap::new();
        let cfg = UNetConfig { features: vec![8, 16, 24], ..UNetConfig::default() };
        let model = UNet::new(VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu), &cfg).unwrap();
        crate::segment::train::seeded_init(&vm, 4).unwrap();
        {
            let data = vm.data().lock().unwrap();
            let mut rng = crate::segment::Rng::new(9);
            for (name, var) in data.iter() {
                let n = var.elem_count();
                let v: Vec<f32> = if name.ends_with("running_var") {
                    (0..n).map(|_| rng.range(0.5, 2.0)).collect()
                } else if name.ends_with("running_mean") || (name.contains(".bn") && name.ends_with("bias")) {
                    (0..n).map(|_| rng.range(-0.3, 0.3)).collect()
                } else if name.contains(".bn") && name.ends_with("weight") {
                    (0..n).map(|_| rng.range(0.7, 1.3)).collect()
                } else {
                    continue;
                };
                var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap()).unwrap();
            }
        }
        let mut rng = crate::segment::Rng::new(2);
        let (n, h, w) = (3, 24, 44);
        let x = Tensor::from_vec((0..n * 3 * h * w).map(|_| rng.f32()).collect::<Vec<f32>>(), (n, 3, h, w), &Device::Cpu).unwrap();
        let a: Vec<f32> = candle_nn::ops::softmax(&model.forward(&x, false).unwrap(), 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let b = FoldedUNet::new(&model).unwrap().probabilities(&values(&x).unwrap(), n, h, w).unwrap();
        assert_eq!(a.len(), b.len());
        let d = a.iter().zip(&b).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(d < 1e-4, "max probability difference {d}");
    }

    /// Every instruction-set variant of the 3×3 kernel this CPU can run gives the portable
    /// one's numbers, on a width that is not a multiple of either register width and an
    /// output channel count that is not a multiple of the channel block.
    #[test]
    fn kernel_variants_agree() {
        let mut rng = crate::segment::Rng::new(5);
        let (cin, cout, n, h, w): (usize, usize, usize, usize, usize) = (5, 11, 2, 7, 37);
        let blocks = cout.div_ceil(CO_BLOCK);
        let mut weight = vec![0f32; blocks * cin * 9 * CO_BLOCK];
        for (i, v) in weight.iter_mut().enumerate() {
            // leave the padding channels of the last block at zero, as `fold` does
            if (i % CO_BLOCK) + (i / (cin * 9 * CO_BLOCK)) * CO_BLOCK < cout {
                *v = rng.range(-1.0, 1.0);
            }
        }
        let conv = Conv3 { cin, cout, weight, bias: (0..cout).map(|_| rng.range(-0.5, 0.5)).collect() };
        let x: Vec<f32> = (0..n * cin * h * w).map(|_| rng.range(-1.0, 1.0)).collect();
        let reference = conv3_relu_isa(Isa::Portable, &x, n, h, w, &conv);
        // the same sum by hand at a few points
        for &(i, co, yy, xx) in &[(0usize, 0usize, 0usize, 0usize), (1, 10, 6, 36), (1, 3, 3, 17)] {
            let mut s = conv.bias[co];
            for ci in 0..cin {
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (sy, sx) = (yy as i64 + ky as i64 - 1, xx as i64 + kx as i64 - 1);
                        if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                            let wv = conv.weight[(((co / CO_BLOCK) * cin + ci) * 9 + ky * 3 + kx) * CO_BLOCK + co % CO_BLOCK];
                            s += wv * x[((i * cin + ci) * h + sy as usize) * w + sx as usize];
                        }
                    }
                }
            }
            let got = reference[((i * cout + co) * h + yy) * w + xx];
            assert!((got - s.max(0.0)).abs() < 1e-4, "({i},{co},{yy},{xx}): {got} vs {}", s.max(0.0));
        }
        if Isa::detect() == Isa::Avx2 {
            let got = conv3_relu_isa(Isa::Avx2, &x, n, h, w, &conv);
            let d = got.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(d < 1e-5, "AVX2: max difference {d}");
        } else {
            eprintln!("AVX2 + FMA not available here: only the portable kernel was checked");
        }
    }
}
