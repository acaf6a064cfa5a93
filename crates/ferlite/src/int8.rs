//! The int8 inference path (`--precision int8`): the residual stages of the folded network with
//! 8-bit activations and weights ([`crate::nn::qgemm`]). The stem (one input channel, nine
//! multiply-adds an output) and the dense head stay f32; the stem writes its output straight
//! into the first stage's u8 map.
//!
//! - Weights: symmetric, one scale per output channel (`max |w| / 127`).
//! - Activations: every input of a quantised convolution follows a ReLU, so it is stored as u8
//!   with zero at 0 and one scale per tensor, `range / 255`. The ranges are calibrated on training
//!   faces ([`calibrate`]) and stored in the model file ([`ACTIVATION_RANGES_KEY`]), three per
//!   stage: its input, conv a's output and conv b's output.
//! - Each product is an exact i32 sum, scaled back per channel, the bias (and for conv c the
//!   residual, in f32) added, then requantised for the next layer or kept f32 for the pooling.
//!   Activations are stored pixel-major with a zero border, as the kernels read them.

use crate::emotion::FACE_SIZE;
use crate::infer::{FastNetwork, FoldedConv};
use crate::nn::qgemm::{Epilogue, Isa, PackedWeights, BLOCK};
use crate::nn::Tensor;
use anyhow::{bail, Result};

/// Model-file metadata key of the calibrated activation ranges (a JSON array of numbers).
pub const ACTIVATION_RANGES_KEY: &str = "ferlite.int8_activation_ranges";

/// Quantised activations per stage: its input, conv a's output, conv b's output.
pub const RANGES_PER_STAGE: usize = 3;

/// `conv`'s weights per output channel to int8, for inputs of `cin_padded` channels in steps of
/// `input_step`; outputs in steps of `output_step` (1.0 for f32 outputs).
fn quantize_conv(isa: Isa, conv: &FoldedConv, cin_padded: usize, input_step: f32, output_step: f32) -> PackedWeights {
    let taps = conv.kernel * conv.kernel;
    let cout_padded = conv.cout.next_multiple_of(BLOCK);
    let mut weights = vec![0i8; cout_padded * taps * cin_padded];
    let (mut scale, mut shift) = (vec![0.0; cout_padded], vec![0.0; cout_padded]);
    for (co, row) in conv.weight.chunks_exact(conv.cin * taps).enumerate() {
        let largest = row.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        let step = if largest > 0.0 { largest / 127.0 } else { 1.0 };
        // Folded weights are `[cin][tap]` per channel; the kernels read `[tap][cin]`.
        for ci in 0..conv.cin {
            for t in 0..taps {
                weights[(co * taps + t) * cin_padded + ci] = (row[ci * taps + t] / step).round() as i8;
            }
        }
        scale[co] = input_step * step / output_step;
        shift[co] = conv.bias[co] / output_step;
    }
    PackedWeights::new(isa, &weights, cin_padded, taps, cout_padded, scale, shift)
}

/// One residual stage; channel counts padded to [`BLOCK`].
#[derive(Clone, Debug)]
struct QuantStage {
    cin: usize,
    cout: usize,
    /// The stage's input step (for the identity shortcut, and what the layer before quantises to).
    input_step: f32,
    a: PackedWeights,
    b: PackedWeights,
    c: PackedWeights,
    shortcut: Option<PackedWeights>,
}

/// The network up to the head in int8; see the module docs.
#[derive(Clone, Debug)]
pub struct Int8Stages {
    /// The stem's 3x3 weights `[tap][channel]` and biases, channels padded to the first stage's
    /// input.
    stem_weights: Vec<f32>,
    stem_bias: Vec<f32>,
    stages: Vec<QuantStage>,
    /// Channels of the last stage's output (unpadded).
    out_channels: usize,
}

/// Scratch memory of one thread, reused between images.
#[derive(Default)]
pub struct Workspace {
    padded_face: Vec<f32>,
    x: Vec<u8>,
    a: Vec<u8>,
    b: Vec<u8>,
    shortcut: Vec<f32>,
    out: Vec<f32>,
}

impl Int8Stages {
    /// The stages of `net` with activations clipped at `ranges` ([`RANGES_PER_STAGE`] a stage).
    pub fn new(net: &FastNetwork, ranges: &[f32]) -> Result<Self> {
        let Some(isa) = Isa::detect() else { bail!("int8 needs AVX2") };
        if isa == Isa::Avx2 {
            tracing::warn!("this CPU has no VNNI (AVX-512 VNNI or AVX-VNNI): --precision int8 runs on AVX2 here, with the same answers but about half f32's speed (docs/performance.md); use f32 for speed");
        }
        if ranges.len() != RANGES_PER_STAGE * net.stages.len() || ranges.iter().any(|r| !(r.is_finite() && *r > 0.0)) {
            bail!("the model's int8 activation ranges do not fit its network ({} numbers for {} stages): recalibrate it with `ferlite calibrate`", ranges.len(), net.stages.len());
        }
        let steps: Vec<f32> = ranges.iter().map(|r| r / 255.0).collect();
        let mut stages = Vec::new();
        let mut cin = net.stem.cout.next_multiple_of(BLOCK);
        for (s, steps) in net.stages.iter().zip(steps.chunks(RANGES_PER_STAGE)) {
            let [input, a_out, b_out] = [steps[0], steps[1], steps[2]];
            let cout = s.c.cout.next_multiple_of(BLOCK);
            stages.push(QuantStage {
                cin,
                cout,
                input_step: input,
                a: quantize_conv(isa, &s.a, cin, input, a_out),
                b: quantize_conv(isa, &s.b, cout, a_out, b_out),
                c: quantize_conv(isa, &s.c, cout, b_out, 1.0),
                shortcut: s.shortcut.as_ref().map(|conv| quantize_conv(isa, conv, cin, input, 1.0)),
            });
            cin = cout;
        }
        let out_channels = net.stages.last().map_or(net.stem.cout, |s| s.c.cout);
        let stem = &net.stem;
        anyhow::ensure!(stem.cin == 1 && stem.kernel == 3, "int8 expects a 3x3 stem on one channel");
        let padded = stem.cout.next_multiple_of(BLOCK);
        let mut stem_weights = vec![0.0; 9 * padded];
        for (co, taps) in stem.weight.chunks_exact(9).enumerate() {
            taps.iter().enumerate().for_each(|(t, &w)| stem_weights[t * padded + co] = w);
        }
        let mut stem_bias = stem.bias.clone();
        stem_bias.resize(padded, 0.0);
        Ok(Int8Stages { stem_weights, stem_bias, stages, out_channels })
    }

    /// One standardised face (48x48): the global average of the last stage's pooled output
    /// into `pooled` (one value per channel), the head's input.
    pub fn run(&self, face: &[f32], ws: &mut Workspace, pooled: &mut Vec<f32>) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: an `Int8Stages` exists only where `Isa::detect` found AVX2 and FMA.
        unsafe {
            self.run_avx2(face, (FACE_SIZE, FACE_SIZE), ws, pooled)
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no int8 off x86_64 ({}, {})", ws.x.len() + pooled.len(), face.len())
    }

    /// The stem on `face` (`h x w`), ReLU, into the first stage's padded u8 map `out`; computed
    /// pixel by pixel, its channels side by side as the map stores them.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn stem_to_u8(&self, face: &[f32], (h, w): (usize, usize), padded_face: &mut Vec<f32>, out: &mut Vec<u8>) {
        let (stride, c) = (w + 2, self.stem_bias.len());
        padded_face.clear();
        padded_face.resize((h + 2) * stride, 0.0);
        for (y, row) in face.chunks_exact(w).enumerate() {
            padded_face[(y + 1) * stride + 1..][..w].copy_from_slice(row);
        }
        out.clear();
        out.resize((h + 2) * stride * c, 0);
        let inverse = 1.0 / self.stages[0].input_step;
        let mut acc = self.stem_bias.clone();
        for y in 0..h {
            for x in 0..w {
                acc.copy_from_slice(&self.stem_bias);
                for (t, weights) in self.stem_weights.chunks_exact(c).enumerate() {
                    let v = padded_face[(y + t / 3) * stride + x + t % 3];
                    acc.iter_mut().zip(weights).for_each(|(a, w)| *a = w.mul_add(v, *a));
                }
                let pixel = &mut out[((y + 1) * stride + x + 1) * c..][..c];
                pixel.iter_mut().zip(&acc).for_each(|(q, a)| *q = to_u8(a * inverse));
            }
        }
    }

    /// [`run`](Self::run) compiled for AVX2, so that the quantising, pooling and copying loops
    /// between the kernels are vectorised too (11-15% of the time as plain x86-64).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, face: &[f32], (mut h, mut w): (usize, usize), ws: &mut Workspace, pooled: &mut Vec<f32>) {
        let Workspace { padded_face, x, a, b, shortcut, out } = ws;
        self.stem_to_u8(face, (h, w), padded_face, x);
        for (i, stage) in self.stages.iter().enumerate() {
            let stride = w + 2;
            let taps: [usize; 9] = std::array::from_fn(|t| t / 3 * stride + t % 3);
            let cout = stage.cout;
            let row = |y: usize| y * w * cout..(y + 1) * w * cout;
            shortcut.resize(h * w * cout, 0.0);
            match &stage.shortcut {
                Some(conv) => {
                    for y in 0..h {
                        conv.run(x, y * stride, &[stride + 1], w, Epilogue::F32 { out: &mut shortcut[row(y)], residual: None, relu: false });
                    }
                }
                None => {
                    for y in 0..h {
                        let pixels = &x[((y + 1) * stride + 1) * cout..][..w * cout];
                        shortcut[row(y)].iter_mut().zip(pixels).for_each(|(s, &q)| *s = q as f32 * stage.input_step);
                    }
                }
            }
            conv3x3_to_u8(&stage.a, x, (h, w), &taps, a);
            conv3x3_to_u8(&stage.b, a, (h, w), &taps, b);
            out.resize(h * w * cout, 0.0);
            for y in 0..h {
                stage.c.run(b, y * stride, &taps, w, Epilogue::F32 { out: &mut out[row(y)], residual: Some(&shortcut[row(y)]), relu: true });
            }
            let (ph, pw) = (h / 2, w / 2);
            match self.stages.get(i + 1) {
                Some(next) => pool_to_u8(out, (h, w), cout, 1.0 / next.input_step, next.cin, x),
                None => {
                    // The global average of the pooled map: the head's input.
                    pooled.clear();
                    pooled.resize(cout, 0.0);
                    let mut pixel = vec![0.0; cout];
                    for y in 0..ph {
                        for xx in 0..pw {
                            max_pool_pixel(out, w, cout, (y, xx), &mut pixel, |v| v);
                            pooled.iter_mut().zip(&pixel).for_each(|(p, v)| *p += v);
                        }
                    }
                    pooled.truncate(self.out_channels);
                    pooled.iter_mut().for_each(|p| *p /= (ph * pw) as f32);
                }
            }
            (h, w) = (ph, pw);
        }
    }
}

/// `conv` on the padded map `input` into the padded map `output` (u8, ReLU'd).
fn conv3x3_to_u8(conv: &PackedWeights, input: &[u8], (h, w): (usize, usize), taps: &[usize; 9], output: &mut Vec<u8>) {
    let (stride, cout) = (w + 2, conv.cout());
    output.clear();
    output.resize((h + 2) * stride * cout, 0);
    for y in 0..h {
        conv.run(input, y * stride, taps, w, Epilogue::U8(&mut output[((y + 1) * stride + 1) * cout..][..w * cout]));
    }
}

/// `v` (in steps) rounded to the nearest step in 0..=255, as the kernels' epilogue does.
fn to_u8(v: f32) -> u8 {
    // Adding and taking away 2^23 rounds to the nearest integer, ties to even, in the default
    // rounding mode (`round_ties_even` may be a libm call).
    const ROUNDER: f32 = 8_388_608.0;
    // `max` then `min` turn NaN into 0 (`clamp` would keep it).
    #[allow(clippy::manual_clamp)]
    let rounded = (v.max(0.0).min(255.0) + ROUNDER) - ROUNDER;
    // SAFETY: `rounded` is a whole number in 0..=255. Unchecked, the conversion vectorises; the
    // saturating `as` is a scalar instruction a value (half the int8 stem's time).
    unsafe { rounded.to_int_unchecked::<i32>() as u8 }
}

/// The 2x2 maximum of pooled pixel `(y, x)` of the pixel-major map `src` (`[h][w][c]`), each
/// channel through `f`, into `dst`.
fn max_pool_pixel<T>(src: &[f32], w: usize, c: usize, (y, x): (usize, usize), dst: &mut [T], f: impl Fn(f32) -> T) {
    let at = |dy: usize, dx: usize| &src[((2 * y + dy) * w + 2 * x + dx) * c..][..c];
    let (p, q, r, s) = (at(0, 0), at(0, 1), at(1, 0), at(1, 1));
    for (i, d) in dst[..c].iter_mut().enumerate() {
        *d = f(p[i].max(q[i]).max(r[i]).max(s[i]));
    }
}

/// 2x2 max-pool of `x` into the next stage's padded u8 map.
fn pool_to_u8(x: &[f32], (h, w): (usize, usize), c: usize, inverse_step: f32, c_padded: usize, out: &mut Vec<u8>) {
    let (ph, pw) = (h / 2, w / 2);
    let stride = pw + 2;
    out.clear();
    out.resize((ph + 2) * stride * c_padded, 0);
    for y in 0..ph {
        for xx in 0..pw {
            max_pool_pixel(x, w, c, (y, xx), &mut out[((y + 1) * stride + xx + 1) * c_padded..], |v| to_u8(v * inverse_step));
        }
    }
}

/// Activation ranges for int8 from `faces` (`[n, 1, 48, 48]`, standardised as for prediction)
/// through the f32 network: for each quantised tensor, the mean over the faces of each face's
/// largest value ([`RANGES_PER_STAGE`] a stage). A mean of maxima rather than the largest of all:
/// one outlier face would otherwise coarsen the steps for every face.
pub fn calibrate(net: &FastNetwork, faces: &Tensor) -> Vec<f32> {
    use rayon::prelude::*;
    let net = FastNetwork { int8: None, ..net.clone() };
    let stages = net.stages.len();
    let slots = RANGES_PER_STAGE * stages;
    let largest_per_face = |face: &[f32]| {
        let mut largest = vec![0.0f64; slots];
        net.observe(face, &mut |layer, stage, values| {
            let slot = match layer {
                "stem" => Some(0),
                "max-pool" if stage + 1 < stages => Some(RANGES_PER_STAGE * (stage + 1)),
                "conv a" => Some(RANGES_PER_STAGE * stage + 1),
                "conv b" => Some(RANGES_PER_STAGE * stage + 2),
                _ => None,
            };
            if let Some(slot) = slot {
                largest[slot] = values.iter().fold(0.0f32, |m, &v| m.max(v)) as f64;
            }
        });
        largest
    };
    // Collected in order and summed in order: the same ranges on any number of threads.
    let per_face: Vec<Vec<f64>> = faces.data.par_chunks_exact(crate::emotion::FACE_PIXELS).map(largest_per_face).collect();
    let sums = per_face.iter().fold(vec![0.0; slots], |sum, face| sum.iter().zip(face).map(|(s, v)| s + v).collect());
    let n = faces.batch().max(1) as f64;
    sums.iter().map(|s| (s / n).max(1e-6) as f32).collect()
}

/// `count` faces of `set` spread evenly over it (every `len / count`-th face, so the classes come
/// in their proportions), standardised as for prediction: what [`calibrate`] measures on.
pub fn sample_faces(set: &crate::data::FaceSet, count: usize) -> Tensor {
    use crate::emotion::{normalize_pixels, FACE_PIXELS, FACE_SIZE};
    assert!(!set.is_empty(), "no faces to sample");
    let count = count.clamp(1, set.len());
    let mut input = Tensor::zeros([count, 1, FACE_SIZE, FACE_SIZE]);
    for (i, out) in input.data.chunks_exact_mut(FACE_PIXELS).enumerate() {
        normalize_pixels(set.face(i * set.len() / count), out);
    }
    input
}

/// Faces [`calibrate_file`] measures on by default (`ferlite calibrate --faces`).
pub const CALIBRATION_FACES: usize = 2000;

/// Calibrates the model file at `path` on `faces` ([`sample_faces`]) and stores the ranges in it
/// (written to `out`, or over `path`), keeping its other metadata; returns the network with them.
pub fn calibrate_file(path: &std::path::Path, faces: &Tensor, out: Option<&std::path::Path>) -> Result<crate::model::Network> {
    use anyhow::Context;
    let mut file = crate::weights::TensorFile::read(path)?;
    let mut net = crate::model::Network::from_tensor_file(&file).with_context(|| format!("{}: not a usable ferlite model", path.display()))?;
    let ranges = calibrate(&net.fold(), faces);
    tracing::info!("{}: int8 activation ranges (stage input, conv a, conv b per stage) {ranges:.3?}", path.display());
    file.metadata.insert(ACTIVATION_RANGES_KEY.into(), serde_json::to_string(&ranges)?);
    file.write_atomic(out.unwrap_or(path))?;
    net.int8_ranges = Some(ranges);
    Ok(net)
}

/// The error for int8 on a model without activation ranges.
pub fn missing_ranges() -> anyhow::Error {
    anyhow::anyhow!("this model has no int8 activation ranges: add them with `ferlite calibrate MODEL --data DIR` (training faces), or use --precision f32")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Network, NetworkConfig};
    use crate::nn::Precision;

    /// Faces with structure (gradients and blobs), standardised like the predictor's input.
    fn faces(n: usize) -> Tensor {
        let mut t = Tensor::zeros([n, 1, 48, 48]);
        for (i, face) in t.data.chunks_mut(48 * 48).enumerate() {
            for (p, v) in face.iter_mut().enumerate() {
                let (y, x) = ((p / 48) as f32, (p % 48) as f32);
                *v = ((x * (0.1 + 0.03 * i as f32)).sin() + (y * 0.17).cos() * 0.8 + ((x - 24.0).powi(2) + (y - 20.0).powi(2) < 60.0 + 9.0 * i as f32) as u8 as f32) * 0.7;
            }
        }
        t
    }

    /// The int8 stages follow the f32 network: logits within a few percent of their spread, on a
    /// network whose channel counts are not multiples of 16 (padding) and on the paper's.
    #[test]
    fn int8_logits_follow_the_f32_network() {
        if Isa::detect().is_none() {
            eprintln!("skipped: this CPU has no AVX2, --precision int8 is not used here");
            return;
        }
        for config in [NetworkConfig { stem_channels: 12, stage_channels: vec![20, 40], hidden_units: 30, ..NetworkConfig::paper() }, NetworkConfig::paper()] {
            let net = Network::new(config, 3);
            let fast = net.fold();
            let input = faces(6);
            let ranges = calibrate(&fast, &input);
            let quantized = FastNetwork { int8_ranges: Some(ranges), ..fast.clone() }.with_precision(Precision::Int8).unwrap();
            let (want, got) = (fast.forward(&input), quantized.forward(&input));
            let spread = want.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let gap = want.data.iter().zip(&got.data).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            eprintln!("stages {:?}: largest logit gap {gap} against logits up to {spread}", fast.stages.len());
            assert!(gap < 0.05 * spread, "largest logit gap {gap} against logits up to {spread}");
            assert!(gap > 0.0, "int8 must not be the f32 path");
        }
    }

    #[test]
    fn int8_without_ranges_is_a_clear_error() {
        if Isa::detect().is_none() {
            return;
        }
        let err = Network::new(NetworkConfig::paper(), 1).fold().with_precision(Precision::Int8).unwrap_err().to_string();
        assert!(err.contains("ferlite calibrate"), "{err}");
    }
}
