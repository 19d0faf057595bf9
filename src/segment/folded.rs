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
        Ok(FoldedUNet {
            down,
            up,
            dec,
            head,
            in_channels: model.config.in_channels,
            multiple: model.config.size_multiple(),
        })
    }

    /// Class probabilities `[n, classes, h, w]` (softmax over the classes) for NCHW input
    /// `x` of `n` slices of `h` × `w`.
    pub fn probabilities(&self, x: &[f32], n: usize, h: usize, w: usize) -> Result<Vec<f32>, SegmentError> {
        if x.len() != n * self.in_channels * h * w
            || !h.is_multiple_of(self.multiple)
            || !w.is_multiple_of(self.multiple)
        {
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
    ///
    /// Activations stay in [`Act`]'s zero-bordered layout from the input to the head, and
    /// each level's skip connection is written straight into the first channels of the
    /// buffer its decoder level concatenates into, so no layer copies, pads or
    /// concatenates (those passes took over half the time of the kernels themselves).
    pub fn logits(&self, x: &[f32], n: usize, h: usize, w: usize) -> Vec<f32> {
        let isa = Isa::detect();
        let last = self.down.len() - 1;
        // decoder level i concatenates [skip of encoder level i; up-convolution]
        let mut cats: Vec<Act> = Vec::with_capacity(last);
        let mut act = Act::from_nchw(x, n, self.in_channels, h, w);
        for (i, pair) in self.down.iter().enumerate() {
            if i < last {
                // room after the skip for the up-convolution of the matching decoder level
                let cat = double_conv(isa, &act, pair, self.up[last - 1 - i].cout);
                act = max_pool2(&cat, pair[1].cout);
                cats.push(cat);
            } else {
                act = double_conv(isa, &act, pair, 0);
            }
        }
        for (up, pair) in self.up.iter().zip(&self.dec) {
            let Some(mut cat) = cats.pop() else { break };
            let skip_c = cat.c - up.cout;
            up2(isa, &act, up, &mut cat, skip_c);
            act = double_conv(isa, &cat, pair, 0);
        }
        head(&act, &self.head)
    }
}

/// Two 3×3 convolutions + ReLU of `src`; the result has `spare` more channels after the
/// second one's, left zero for the caller to fill.
fn double_conv(isa: Isa, src: &Act, [c1, c2]: &[Conv3; 2], spare: usize) -> Act {
    let mut mid = Act::zeros(src.n, c1.cout, src.h, src.w);
    conv3_relu(isa, src, c1, &mut mid);
    let mut out = Act::zeros(src.n, c2.cout + spare, src.h, src.w);
    conv3_relu(isa, &mid, c2, &mut out);
    out
}

/// Activations of `n` images × `c` channels of `h` × `w`, each plane with a zero border:
/// `ph` = h + 2 rows of `pw` = (w rounded up to whole registers) + 2 columns, pixel
/// `(y, x)` at `(y + 1) · pw + x + 1`. The border is the 3×3 convolution's zero padding, and
/// the columns past `w` let the kernel read whole registers.
struct Act {
    data: Vec<f32>,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
}

impl Act {
    fn zeros(n: usize, c: usize, h: usize, w: usize) -> Act {
        let (ph, pw) = (h + 2, w.div_ceil(LANES) * LANES + 2);
        Act { data: vec![0f32; n * c * ph * pw], n, c, h, w, ph, pw }
    }

    fn plane_len(&self) -> usize {
        self.ph * self.pw
    }

    fn from_nchw(x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Act {
        let mut a = Act::zeros(n, c, h, w);
        let (pw, len) = (a.pw, a.plane_len());
        a.data.par_chunks_mut(len).zip(x.par_chunks(h * w)).for_each(|(p, plane)| {
            for y in 0..h {
                p[(y + 1) * pw + 1..(y + 1) * pw + 1 + w].copy_from_slice(&plane[y * w..(y + 1) * w]);
            }
        });
        a
    }

    #[cfg(test)]
    fn to_nchw(&self) -> Vec<f32> {
        let (h, w, pw) = (self.h, self.w, self.pw);
        let mut out = vec![0f32; self.n * self.c * h * w];
        for (o, p) in out.chunks_mut(h * w).zip(self.data.chunks(self.plane_len())) {
            for y in 0..h {
                o[y * w..(y + 1) * w].copy_from_slice(&p[(y + 1) * pw + 1..(y + 1) * pw + 1 + w]);
            }
        }
        out
    }
}

/// 3×3 "same" convolution + bias + ReLU of every channel of `src`, written into the first
/// channels of `dst` (same image size). Tasks are (image, block of 8 output channels), whose
/// planes are contiguous in `dst`.
fn conv3_relu(isa: Isa, src: &Act, conv: &Conv3, dst: &mut Act) {
    debug_assert_eq!((src.c, src.h, src.w, src.n), (conv.cin, dst.h, dst.w, dst.n));
    let len = dst.plane_len();
    let (cin, cout, dst_c) = (conv.cin, conv.cout, dst.c);
    let tasks: Vec<(usize, usize, &mut [f32])> = dst
        .data
        .chunks_mut(dst_c * len)
        .enumerate()
        .flat_map(|(i, img)| {
            let mine = &mut img[..cout * len];
            mine.chunks_mut(CO_BLOCK * len).enumerate().map(move |(b, planes)| (i, b, planes))
        })
        .collect();
    tasks.into_par_iter().for_each(|(i, b, planes)| {
        let img = &src.data[i * cin * src.plane_len()..(i + 1) * cin * src.plane_len()];
        let wb = &conv.weight[b * cin * 9 * CO_BLOCK..(b + 1) * cin * 9 * CO_BLOCK];
        let bias = &conv.bias[b * CO_BLOCK..(b * CO_BLOCK + CO_BLOCK).min(cout)];
        let geo = Geo { cin, ph: src.ph, pw: src.pw, h: src.h, w: src.w };
        conv3_planes(isa, img, wb, bias, geo, planes);
    });
}

/// Sizes the kernel needs: input channels and the [`Act`] plane geometry.
#[derive(Clone, Copy)]
struct Geo {
    cin: usize,
    ph: usize,
    pw: usize,
    h: usize,
    w: usize,
}

/// Which vector instructions the kernels run with, checked at run time.
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

/// Output planes (`bias.len()` of them, in `planes`) of one image and one block of output
/// channels, bias and ReLU applied.
fn conv3_planes(isa: Isa, img: &[f32], wb: &[f32], bias: &[f32], geo: Geo, planes: &mut [f32]) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` found AVX2 and FMA on this CPU.
        Isa::Avx2 => unsafe { conv3_planes_avx2(img, wb, bias, geo, planes) },
        _ => conv3_planes_body(img, wb, bias, geo, planes),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn conv3_planes_avx2(img: &[f32], wb: &[f32], bias: &[f32], geo: Geo, planes: &mut [f32]) {
    conv3_planes_body(img, wb, bias, geo, planes);
}

/// The micro-kernel: 8 channels × 8 pixels of accumulators, fed by one load of 8 input
/// pixels per (input channel, tap); written so the compiler keeps `acc` in registers. Only
/// pixels inside the image are stored, so the borders stay zero for the next layer.
/// (A variant with 16-pixel AVX-512 accumulators measured 7× slower on the same machine;
/// not investigated further, so this one stays.)
#[inline(always)]
fn conv3_planes_body(img: &[f32], wb: &[f32], bias: &[f32], geo: Geo, planes: &mut [f32]) {
    let Geo { cin, ph, pw, h, w } = geo;
    let len = ph * pw;
    for y in 0..h {
        let mut x0 = 0;
        while x0 < w {
            let mut acc = [[0f32; LANES]; CO_BLOCK];
            for ci in 0..cin {
                let plane = &img[ci * len..(ci + 1) * len];
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
            let lanes = LANES.min(w - x0);
            let at = (y + 1) * pw + 1 + x0;
            for (c, &b) in bias.iter().enumerate() {
                let out = &mut planes[c * len + at..c * len + at + lanes];
                for (o, &a) in out.iter_mut().zip(&acc[c]) {
                    *o = (a + b).max(0.0);
                }
            }
            x0 += LANES;
        }
    }
}

/// 2×2 max-pooling of channels `0..c` of `x`.
fn max_pool2(x: &Act, c: usize) -> Act {
    let (oh, ow) = (x.h / 2, x.w / 2);
    let mut out = Act::zeros(x.n, c, oh, ow);
    let (len, olen, pw, opw, xc) = (x.plane_len(), out.plane_len(), x.pw, out.pw, x.c);
    out.data.par_chunks_mut(olen).enumerate().for_each(|(ic, o)| {
        let (i, ch) = (ic / c, ic % c);
        let p = &x.data[(i * xc + ch) * len..(i * xc + ch + 1) * len];
        for y in 0..oh {
            let (r0, r1) = ((2 * y + 1) * pw + 1, (2 * y + 2) * pw + 1);
            for xx in 0..ow {
                let a = p[r0 + 2 * xx].max(p[r0 + 2 * xx + 1]);
                let b = p[r1 + 2 * xx].max(p[r1 + 2 * xx + 1]);
                o[(y + 1) * opw + 1 + xx] = a.max(b);
            }
        }
    });
    out
}

/// Transposed 2×2 stride-2 convolution of `x` into channels `c0 ..` of `dst` (twice the
/// size): each input pixel spreads to a 2×2 block.
fn up2(isa: Isa, x: &Act, up: &Up2, dst: &mut Act, c0: usize) {
    let (cout, len, dst_c) = (up.cout, dst.plane_len(), dst.c);
    let planes: Vec<(usize, usize, &mut [f32])> = dst
        .data
        .chunks_mut(dst_c * len)
        .enumerate()
        .flat_map(|(i, img)| {
            img[c0 * len..(c0 + cout) * len].chunks_mut(len).enumerate().map(move |(co, p)| (i, co, p))
        })
        .collect();
    planes.into_par_iter().for_each(|(i, co, o)| match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::detect` found AVX2 and FMA on this CPU.
        Isa::Avx2 => unsafe { up2_plane_avx2(x, up, i, co, o, dst.pw) },
        _ => up2_plane(x, up, i, co, o, dst.pw),
    });
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn up2_plane_avx2(x: &Act, up: &Up2, i: usize, co: usize, o: &mut [f32], opw: usize) {
    up2_plane(x, up, i, co, o, opw);
}

/// One output plane of [`up2`]: the four taps are summed over the input channels in
/// contiguous rows (so they vectorise) and interleaved once per row.
#[inline(always)]
fn up2_plane(x: &Act, up: &Up2, i: usize, co: usize, o: &mut [f32], opw: usize) {
    let (cin, cout, w, len, pw) = (up.cin, up.cout, x.w, x.plane_len(), x.pw);
    let mut taps = vec![0f32; 4 * w];
    for y in 0..x.h {
        taps.fill(up.bias[co]);
        for ci in 0..cin {
            let row = &x.data[(i * x.c + ci) * len + (y + 1) * pw + 1..][..w];
            let k = &up.weight[(ci * cout + co) * 4..(ci * cout + co + 1) * 4];
            for (t, tap) in taps.chunks_exact_mut(w).enumerate() {
                let kt = k[t];
                for (d, &v) in tap.iter_mut().zip(row) {
                    *d = kt.mul_add(v, *d);
                }
            }
        }
        // tap t = 2a + b goes to output row 2y + a, column 2x + b
        for a in 0..2 {
            let dst = &mut o[(2 * y + a + 1) * opw + 1..][..2 * w];
            let (t0, t1) = (&taps[2 * a * w..(2 * a + 1) * w], &taps[(2 * a + 1) * w..(2 * a + 2) * w]);
            for (xx, pair) in dst.chunks_exact_mut(2).enumerate() {
                pair[0] = t0[xx];
                pair[1] = t1[xx];
            }
        }
    }
}

/// The 1×1 head: logits `[n, classes, h, w]` without borders.
fn head(x: &Act, head: &Head) -> Vec<f32> {
    let (cin, cout, h, w, len, pw) = (head.cin, head.cout, x.h, x.w, x.plane_len(), x.pw);
    let mut out = vec![0f32; x.n * cout * h * w];
    out.par_chunks_mut(h * w).enumerate().for_each(|(ic, o)| {
        let (i, co) = (ic / cout, ic % cout);
        o.fill(head.bias[co]);
        for ci in 0..cin {
            let wv = head.weight[co * cin + ci];
            let p = &x.data[(i * x.c + ci) * len..(i * x.c + ci + 1) * len];
            for y in 0..h {
                for (d, &v) in o[y * w..(y + 1) * w].iter_mut().zip(&p[(y + 1) * pw + 1..(y + 1) * pw + 1 + w]) {
                    *d += wv * v;
                }
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
        let x =
            Tensor::from_vec((0..n * 3 * h * w).map(|_| rng.f32()).collect::<Vec<f32>>(), (n, 3, h, w), &Device::Cpu)
                .unwrap();
        let a: Vec<f32> = candle_nn::ops::softmax(&model.forward(&x, false).unwrap(), 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let b = FoldedUNet::new(&model).unwrap().probabilities(&values(&x).unwrap(), n, h, w).unwrap();
        assert_eq!(a.len(), b.len());
        let d = a.iter().zip(&b).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(d < 1e-4, "max probability difference {d}");
    }

    fn conv3_relu_isa(isa: Isa, x: &[f32], n: usize, h: usize, w: usize, conv: &Conv3) -> Vec<f32> {
        let src = Act::from_nchw(x, n, conv.cin, h, w);
        let mut dst = Act::zeros(n, conv.cout, h, w);
        conv3_relu(isa, &src, conv, &mut dst);
        dst.to_nchw()
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
                            let wv = conv.weight
                                [(((co / CO_BLOCK) * cin + ci) * 9 + ky * 3 + kx) * CO_BLOCK + co % CO_BLOCK];
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
