//! YuNet-n (Shiqi Yu's libfacedetection, Apache-2.0): a 75,856-parameter anchor-free face
//! detector with five landmarks per face, a few milliseconds a frame on one core. The authors'
//! ONNX export (any input size) is compiled into the binary (`assets/yunet/`) byte for byte; its
//! weights are read from it here ([`onnx`]) and the network runs on our own kernels (GEMM for the
//! 1x1 convolutions, a direct loop for the depthwise 3x3s; docs/decisions.md 23). The decoding
//! follows the authors' (and OpenCV's `FaceDetectorYN`): per stride 8/16/32, one prior per cell,
//! score `sqrt(class * objectness)`, box centre offsets and log sizes in strides.
//!
//! ```text
//! input [h, w, 3] BGR 0-255 (h, w multiples of 32)
//! stem     conv3x3/2(3->16) ReLU, dp(16->16)                 out: [h/2, w/2, 16]
//! stage1   maxpool, dp(16->16), dp(16->64), dp(64->64) x2     out: [h/4, w/4, 64]
//! stage2-4 maxpool, dp(64->64) x2                             out: c8 [h/8], c16 [h/16], c32 [h/32]
//! neck     p32 = dp(c32); p16 = dp(c16 + up(p32)); p8 = dp(c8 + up(p16))
//! heads    per level: dp(64->64), then dp(64->16) without ReLU: class, objectness, box (4), landmarks (10)
//! dp(a->b): conv1x1(a->b), depthwise conv3x3(b) + bias, ReLU
//! ```

use super::ssd::iou;
use super::{Detector, FaceBox, Landmarks};
use anyhow::{bail, ensure, Context, Result};
use image::{imageops, RgbImage};

const ONNX: &[u8] = include_bytes!("../../../../assets/yunet/yunet_n_dynamic.onnx");

/// The photo is resized so that its longer side is [`SMALL_CANVAS`] pixels, or [`LARGE_CANVAS`]
/// for photos over [`LARGE_PHOTO`] (up or down), then padded right and below to a multiple of
/// 32. A 640x480 frame is searched at 320x240 (a quarter of the work of 640x480: 406 million
/// multiply-adds there), where faces down to ~20 px of the frame are found; large photos at 640
/// keep their small faces. Measured on the project's sets, docs/decisions.md 23.
pub const SMALL_CANVAS: u32 = 320;
pub const LARGE_CANVAS: u32 = 640;
pub const LARGE_PHOTO: u32 = 800;
const STRIDES: [usize; 3] = [8, 16, 32];
/// Faces scoring under this are dropped (the authors' demo: 0.9; see docs/decisions.md 23).
pub const MIN_SCORE: f32 = 0.6;
/// Boxes overlapping a better one by more than this are the same face (the authors' NMS).
const NMS_IOU: f32 = 0.3;
/// Channels of a head's output: class, objectness, box (4), landmarks (10).
const HEAD_OUTPUTS: usize = 16;

/// An activation map, height x width x channels (channels fastest).
struct Map {
    height: usize,
    width: usize,
    channels: usize,
    data: Vec<f32>,
}

/// Whether this CPU runs the AVX2+FMA variants of the kernels below (the same loops compiled for
/// 8 lanes, products fused with their sums).
fn simd() -> bool {
    crate::nn::direct_conv::available()
}

/// `acc + a * b`, fused where the loop is compiled with FMA (one instruction), not elsewhere
/// (where `mul_add` would be a slow library call).
#[inline(always)]
fn multiply_add<const FUSED: bool>(acc: f32, a: f32, b: f32) -> f32 {
    if FUSED {
        a.mul_add(b, acc)
    } else {
        acc + a * b
    }
}

/// `acc` plus `input` times `weights`, lane by lane.
#[inline(always)]
fn add_products<const C: usize, const FUSED: bool>(acc: &mut [f32; C], input: &[f32; C], weights: &[f32; C]) {
    for ((a, v), w) in acc.iter_mut().zip(input).zip(weights) {
        *a = multiply_add::<FUSED>(*a, *v, *w);
    }
}

/// A 1x1 convolution with bias; `weight` is `[cin][cout]`.
struct Pointwise {
    cin: usize,
    cout: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Pointwise {
    // out: [h, w, cout]
    fn forward(&self, x: &Map) -> Map {
        let mut data = Vec::with_capacity(x.height * x.width * self.cout);
        match (self.cin, self.cout) {
            (16, 16) => self.run::<16, 16>(&x.data, &mut data),
            (16, 64) => self.run::<16, 64>(&x.data, &mut data),
            (64, 64) => self.run::<64, 64>(&x.data, &mut data),
            (64, HEAD_OUTPUTS) => self.run::<64, HEAD_OUTPUTS>(&x.data, &mut data),
            (cin, cout) => unreachable!("YuNet has no {cin}->{cout} 1x1 convolution"),
        }
        Map { height: x.height, width: x.width, channels: self.cout, data }
    }

    fn run<const CIN: usize, const COUT: usize>(&self, input: &[f32], out: &mut Vec<f32>) {
        if simd() {
            // SAFETY: the CPU has AVX2 and FMA (checked).
            unsafe { self.run_avx2::<CIN, COUT>(input, out) }
        } else {
            self.positions::<CIN, COUT, false>(input, out)
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2<const CIN: usize, const COUT: usize>(&self, input: &[f32], out: &mut Vec<f32>) {
        self.positions::<CIN, COUT, true>(input, out)
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn run_avx2<const CIN: usize, const COUT: usize>(&self, input: &[f32], out: &mut Vec<f32>) {
        self.positions::<CIN, COUT, false>(input, out)
    }

    /// Every position's outputs: the bias plus each input channel times its row of weights, in
    /// registers (`COUT` values) until the position is done.
    #[inline(always)]
    fn positions<const CIN: usize, const COUT: usize, const FUSED: bool>(&self, input: &[f32], out: &mut Vec<f32>) {
        let bias: &[f32; COUT] = self.bias[..].try_into().expect("COUT biases");
        for x in input.chunks_exact(CIN) {
            let mut acc = *bias;
            for (v, w) in x.iter().zip(self.weight.chunks_exact(COUT)) {
                for (a, w) in acc.iter_mut().zip(w) {
                    *a = multiply_add::<FUSED>(*a, *v, *w);
                }
            }
            out.extend_from_slice(&acc);
        }
    }
}

/// A depthwise 3x3 convolution (stride 1, zero padding 1) with bias and optional ReLU; `weight`
/// is `[ky][kx][channel]`.
struct Depthwise {
    channels: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
    relu: bool,
}

impl Depthwise {
    // out: [h, w, channels]
    fn forward(&self, x: &Map) -> Map {
        let mut data = Vec::with_capacity(x.data.len());
        match self.channels {
            16 => self.run::<16>(x, &mut data),
            64 => self.run::<64>(x, &mut data),
            c => unreachable!("YuNet has no depthwise convolution of {c} channels"),
        }
        Map { height: x.height, width: x.width, channels: self.channels, data }
    }

    fn run<const C: usize>(&self, x: &Map, out: &mut Vec<f32>) {
        if simd() {
            // SAFETY: the CPU has AVX2 and FMA (checked).
            unsafe { self.run_avx2::<C>(x, out) }
        } else {
            self.rows::<C, false>(x, out)
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2<const C: usize>(&self, x: &Map, out: &mut Vec<f32>) {
        self.rows::<C, true>(x, out)
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn run_avx2<const C: usize>(&self, x: &Map, out: &mut Vec<f32>) {
        self.rows::<C, false>(x, out)
    }

    /// Each output pixel's `C` sums in registers over its (up to) nine taps.
    #[inline(always)]
    fn rows<const C: usize, const FUSED: bool>(&self, x: &Map, out: &mut Vec<f32>) {
        let (height, width) = (x.height, x.width);
        let bias: &[f32; C] = self.bias[..].try_into().expect("C biases");
        let taps: Vec<&[f32; C]> = self.weight.chunks_exact(C).map(|t| t.try_into().expect("C weights")).collect();
        for oy in 0..height {
            for ox in 0..width {
                let mut acc = *bias;
                if oy >= 1 && oy + 1 < height && ox >= 1 && ox + 1 < width {
                    // Inside the padding: all nine taps, three neighbours a row, no bounds to test
                    // (detection of a 640x480 frame 5.9 → 5.5 ms, docs/performance.md 2026-12-07).
                    for (ky, row_taps) in taps.chunks_exact(3).enumerate() {
                        let row = &x.data[((oy + ky - 1) * width + ox - 1) * C..][..3 * C];
                        for (input, w) in row.chunks_exact(C).zip(row_taps) {
                            add_products::<C, FUSED>(&mut acc, input.try_into().expect("C inputs"), w);
                        }
                    }
                } else {
                    for ky in 0..3 {
                        let Some(iy) = (oy + ky).checked_sub(1).filter(|&iy| iy < height) else { continue };
                        for kx in 0..3 {
                            let Some(ix) = (ox + kx).checked_sub(1).filter(|&ix| ix < width) else { continue };
                            add_products::<C, FUSED>(&mut acc, x.data[(iy * width + ix) * C..][..C].try_into().expect("C inputs"), taps[ky * 3 + kx]);
                        }
                    }
                }
                if self.relu {
                    acc.iter_mut().for_each(|a| *a = a.max(0.0));
                }
                out.extend_from_slice(&acc);
            }
        }
    }
}

/// YuNet's building block: a 1x1 convolution, then a depthwise 3x3 (batch norm folded into it by
/// the export) and, except in the heads' last unit, ReLU.
struct DpUnit {
    pointwise: Pointwise,
    depthwise: Depthwise,
}

impl DpUnit {
    fn forward(&self, x: &Map) -> Map {
        self.depthwise.forward(&self.pointwise.forward(x))
    }
}

/// The 3x3 stride-2 stem (3 -> 16, batch norm folded), ReLU; `weight` is `[channel][ky][kx][16]`.
struct Stem {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Stem {
    const OUT: usize = 16;

    // out: [h/2, w/2, 16]
    fn forward(&self, x: &Map) -> Map {
        let mut data = Vec::with_capacity(x.height / 2 * (x.width / 2) * Self::OUT);
        if simd() {
            // SAFETY: the CPU has AVX2 and FMA (checked).
            unsafe { self.run_avx2(x, &mut data) }
        } else {
            self.pixels::<false>(x, &mut data)
        }
        Map { height: x.height / 2, width: x.width / 2, channels: Self::OUT, data }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, x: &Map, out: &mut Vec<f32>) {
        self.pixels::<true>(x, out)
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn run_avx2(&self, x: &Map, out: &mut Vec<f32>) {
        self.pixels::<false>(x, out)
    }

    /// `acc` plus tap (`ky`, `kx`)'s weights times `pixel`'s three channels.
    #[inline(always)]
    fn add_tap<const FUSED: bool>(&self, acc: &mut [f32; Self::OUT], ky: usize, kx: usize, pixel: &[f32]) {
        for (channel, v) in pixel.iter().enumerate() {
            let w: &[f32; Self::OUT] = self.weight[((channel * 3 + ky) * 3 + kx) * Self::OUT..][..Self::OUT].try_into().expect("16 weights");
            for (a, w) in acc.iter_mut().zip(w) {
                *a = multiply_add::<FUSED>(*a, *v, *w);
            }
        }
    }

    #[inline(always)]
    fn pixels<const FUSED: bool>(&self, x: &Map, out: &mut Vec<f32>) {
        let width = x.width / 2;
        let bias: &[f32; 16] = self.bias[..].try_into().expect("16 biases");
        for i in 0..x.height / 2 * width {
            let (oy, ox) = (i / width, i % width);
            let mut acc = *bias;
            if oy >= 1 && 2 * oy + 1 < x.height && ox >= 1 && 2 * ox + 1 < x.width {
                // Inside the padding: three pixels a row, no bounds to test.
                for ky in 0..3 {
                    let row = &x.data[((2 * oy + ky - 1) * x.width + 2 * ox - 1) * 3..][..9];
                    for (kx, pixel) in row.chunks_exact(3).enumerate() {
                        self.add_tap::<FUSED>(&mut acc, ky, kx, pixel);
                    }
                }
            } else {
                for ky in 0..3 {
                    // The zero padding is 1 on each side.
                    let Some(iy) = (2 * oy + ky).checked_sub(1).filter(|&iy| iy < x.height) else { continue };
                    for kx in 0..3 {
                        let Some(ix) = (2 * ox + kx).checked_sub(1).filter(|&ix| ix < x.width) else { continue };
                        self.add_tap::<FUSED>(&mut acc, ky, kx, &x.data[(iy * x.width + ix) * 3..][..3]);
                    }
                }
            }
            acc.iter_mut().for_each(|a| *a = a.max(0.0));
            out.extend_from_slice(&acc);
        }
    }
}

/// 2x2 max pooling, stride 2 (the canvas's sides are multiples of 32, so every map's are even).
// out: [h/2, w/2, c]
fn max_pool(x: &Map) -> Map {
    let (height, width, c) = (x.height / 2, x.width / 2, x.channels);
    // The inputs are ReLU outputs, never NaN: a plain comparison (one vector instruction), not
    // `f32::max`'s NaN handling.
    let larger = |a: f32, b: f32| if a > b { a } else { b };
    let mut data = vec![0f32; height * width * c];
    for (oy, out_row) in data.chunks_exact_mut(width * c).enumerate() {
        let (top, bottom) = (&x.data[2 * oy * x.width * c..][..x.width * c], &x.data[(2 * oy + 1) * x.width * c..][..x.width * c]);
        for ((out, top), bottom) in out_row.chunks_exact_mut(c).zip(top.chunks_exact(2 * c)).zip(bottom.chunks_exact(2 * c)) {
            for (k, o) in out.iter_mut().enumerate() {
                *o = larger(larger(top[k], top[c + k]), larger(bottom[k], bottom[c + k]));
            }
        }
    }
    Map { height, width, channels: c, data }
}

/// `fine + coarse` upsampled 2x by nearest neighbour (ONNX `Resize`, mode nearest, floor).
fn add_upsampled(fine: &Map, coarse: &Map) -> Map {
    let c = fine.channels;
    let mut data = fine.data.clone();
    for (y, row) in data.chunks_exact_mut(fine.width * c).enumerate() {
        let coarse_row = &coarse.data[(y / 2) * coarse.width * c..][..coarse.width * c];
        for (x, pixel) in row.chunks_exact_mut(c).enumerate() {
            pixel.iter_mut().zip(&coarse_row[(x / 2) * c..][..c]).for_each(|(a, b)| *a += b);
        }
    }
    Map { height: fine.height, width: fine.width, channels: c, data }
}

/// One level's head: a shared unit, then class, objectness, box and landmark units merged into
/// one of 16 channels (a depthwise convolution treats each channel alone, so this is exact).
struct Head {
    share: DpUnit,
    outputs: DpUnit,
}

pub struct YuNet {
    stem: Stem,
    /// Units at stride 2, then one list per stride 4, 8, 16 and 32, each after a max pool.
    stages: [Vec<DpUnit>; 5],
    /// Lateral units for strides 8, 16, 32.
    lateral: [DpUnit; 3],
    heads: [Head; 3],
}

/// One face before NMS: score, corners `[x0, y0, x1, y1]` and landmarks, in the photo's pixels.
struct Candidate {
    score: f32,
    corners: [f32; 4],
    landmarks: Landmarks,
}

impl YuNet {
    /// The network from the ONNX file compiled into the binary.
    pub fn new() -> Result<Self> {
        Self::from_onnx(ONNX).context("embedded YuNet face detector (assets/yunet/yunet_n_dynamic.onnx)")
    }

    fn from_onnx(bytes: &[u8]) -> Result<Self> {
        let graph = onnx::read(bytes)?;
        let tensor = |name: &str, dims: &[usize]| -> Result<Vec<f32>> {
            let t = graph.tensors.get(name).with_context(|| format!("no tensor {name}"))?;
            ensure!(t.dims == dims, "tensor {name} is {:?}, expected {dims:?}", t.dims);
            Ok(t.values.clone())
        };
        // The convolution reading `input`, as (weight, bias, output) names.
        let conv_reading = |input: &str| -> Result<&onnx::Conv> {
            let mut readers = graph.convs.iter().filter(|c| c.input == input);
            match (readers.next(), readers.next()) {
                (Some(conv), None) => Ok(conv),
                _ => bail!("expected one convolution reading {input}"),
            }
        };
        let unit = |prefix: &str, cin: usize, cout: usize, relu: bool| -> Result<DpUnit> {
            let name = format!("{prefix}.conv1.weight");
            let conv1 = graph.convs.iter().find(|c| c.weight == name).with_context(|| format!("no convolution {name}"))?;
            let conv2 = conv_reading(&conv1.output)?;
            let pointwise = Pointwise { cin, cout, weight: transpose(&tensor(&conv1.weight, &[cout, cin, 1, 1])?, cout), bias: tensor(&conv1.bias, &[cout])? };
            let weight = transpose(&tensor(&conv2.weight, &[cout, 1, 3, 3])?, cout);
            Ok(DpUnit { pointwise, depthwise: Depthwise { channels: cout, weight, bias: tensor(&conv2.bias, &[cout])?, relu } })
        };
        let stem_conv = conv_reading("input")?;
        let stem = Stem { weight: transpose(&tensor(&stem_conv.weight, &[16, 3, 3, 3])?, 16), bias: tensor(&stem_conv.bias, &[16])? };
        let backbone = |model: usize, conv: usize, cin, cout| unit(&format!("backbone.model{model}.conv{conv}"), cin, cout, true);
        let stages = [
            vec![backbone(0, 2, 16, 16)?],
            vec![backbone(1, 1, 16, 16)?, backbone(1, 2, 16, 64)?, backbone(2, 1, 64, 64)?, backbone(2, 2, 64, 64)?],
            vec![backbone(3, 1, 64, 64)?, backbone(3, 2, 64, 64)?],
            vec![backbone(4, 1, 64, 64)?, backbone(4, 2, 64, 64)?],
            vec![backbone(5, 1, 64, 64)?, backbone(5, 2, 64, 64)?],
        ];
        let lateral = [0, 1, 2].map(|i| unit(&format!("neck.lateral_convs.{i}"), 64, 64, true));
        let head = |level: usize| -> Result<Head> {
            let share = unit(&format!("bbox_head.multi_level_share_convs.{level}.0"), 64, 64, true)?;
            let parts = [("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10)].map(|(part, n)| unit(&format!("bbox_head.multi_level_{part}.{level}"), 64, n, false));
            let mut outputs = DpUnit {
                pointwise: Pointwise { cin: 64, cout: HEAD_OUTPUTS, weight: vec![0.0; 64 * HEAD_OUTPUTS], bias: Vec::new() },
                depthwise: Depthwise { channels: HEAD_OUTPUTS, weight: vec![0.0; 9 * HEAD_OUTPUTS], bias: Vec::new(), relu: false },
            };
            let mut first = 0;
            for part in parts {
                let part = part?;
                let n = part.pointwise.cout;
                for ci in 0..64 {
                    outputs.pointwise.weight[ci * HEAD_OUTPUTS + first..][..n].copy_from_slice(&part.pointwise.weight[ci * n..][..n]);
                }
                outputs.pointwise.bias.extend(&part.pointwise.bias);
                outputs.depthwise.bias.extend(&part.depthwise.bias);
                for tap in 0..9 {
                    outputs.depthwise.weight[tap * HEAD_OUTPUTS + first..][..n].copy_from_slice(&part.depthwise.weight[tap * n..][..n]);
                }
                first += n;
            }
            Ok(Head { share, outputs })
        };
        let [l0, l1, l2] = lateral;
        Ok(YuNet { stem, stages, lateral: [l0?, l1?, l2?], heads: [head(0)?, head(1)?, head(2)?] })
    }

    /// The heads' outputs for stride 8, 16 and 32: `[h/s, w/s, 16]` each, class and objectness
    /// as probabilities.
    fn forward(&self, input: &Map) -> [Map; 3] {
        let mut stage_outputs: Vec<Map> = Vec::with_capacity(self.stages.len());
        for stage in &self.stages {
            let mut x = match stage_outputs.last() {
                None => self.stem.forward(input),
                Some(previous) => max_pool(previous),
            };
            for unit in stage {
                x = unit.forward(&x);
            }
            stage_outputs.push(x);
        }
        let [_, _, c8, c16, c32]: [Map; 5] = stage_outputs.try_into().unwrap_or_else(|_| unreachable!("five stages"));
        let p32 = self.lateral[2].forward(&c32);
        let p16 = self.lateral[1].forward(&add_upsampled(&c16, &p32));
        let p8 = self.lateral[0].forward(&add_upsampled(&c8, &p16));
        [p8, p16, p32].iter().zip(&self.heads).map(|(p, head)| {
            let mut out = head.outputs.forward(&head.share.forward(p));
            for pixel in out.data.chunks_exact_mut(HEAD_OUTPUTS) {
                pixel[0] = sigmoid(pixel[0]);
                pixel[1] = sigmoid(pixel[1]);
            }
            out
        }).collect::<Vec<_>>().try_into().unwrap_or_else(|_| unreachable!("three heads"))
    }

    /// Faces in `photo` scoring at least `min_score`, in its pixels.
    pub fn detect(&self, photo: &RgbImage, min_score: f32) -> Result<Vec<FaceBox>> {
        let (w, h) = photo.dimensions();
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        let mut candidates = self.candidates(photo, min_score);
        candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept: Vec<Candidate> = Vec::new();
        for candidate in candidates {
            if kept.iter().all(|k| iou(&k.corners, &candidate.corners) <= NMS_IOU) {
                kept.push(candidate);
            }
        }
        Ok(kept
            .into_iter()
            .filter_map(|Candidate { score, corners: [x0, y0, x1, y1], landmarks }| {
                let clamp = |v: f32, max: u32| v.round().clamp(0.0, max as f32) as u32;
                let (x, y) = (clamp(x0, w), clamp(y0, h));
                let (width, height) = (clamp(x1, w).saturating_sub(x), clamp(y1, h).saturating_sub(y));
                (width > 0 && height > 0).then_some(FaceBox { x, y, width, height, score: Some(score as f64), detector: Some(Detector::Yunet), landmarks: Some(landmarks) })
            })
            .collect())
    }

    /// The canvas for `photo`: resized, BGR 0-255, padded with black right and below (as in the
    /// authors' and OpenCV's code); and the scale from the photo's pixels to the canvas's.
    fn canvas(photo: &RgbImage) -> (Map, f32) {
        let (w, h) = photo.dimensions();
        let long = if w.max(h) > LARGE_PHOTO { LARGE_CANVAS } else { SMALL_CANVAS };
        let scale = long as f32 / w.max(h) as f32;
        let (content_w, content_h) = (((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1));
        let (width, height) = (content_w.div_ceil(32) as usize * 32, content_h.div_ceil(32) as usize * 32);
        let mut data = vec![0f32; height * width * 3];
        let factor = (w / content_w) as usize;
        if factor >= 2 && w == content_w * factor as u32 && h == content_h * factor as u32 {
            // A whole factor smaller (a 640x480 frame, 720p, 1080p): each canvas pixel the mean of
            // its factor x factor block, straight from the photo (4x faster than `thumbnail`).
            let (photo_w, area) = (w as usize, (factor * factor) as f32);
            for y in 0..content_h as usize {
                for x in 0..content_w as usize {
                    let mut sum = [0u32; 3];
                    for row in photo.as_raw()[(y * factor) * photo_w * 3..].chunks_exact(photo_w * 3).take(factor) {
                        for p in row[x * factor * 3..][..factor * 3].chunks_exact(3) {
                            (0..3).for_each(|c| sum[c] += p[c] as u32);
                        }
                    }
                    data[(y * width + x) * 3..][..3].copy_from_slice(&[2, 1, 0].map(|c| sum[c] as f32 / area));
                }
            }
            return (Map { height, width, channels: 3, data }, scale);
        }
        // Otherwise shrinking by area averaging (`thumbnail`'s integer path); the Triangle filter
        // enlarges small photos.
        let resized = if content_w <= w {
            imageops::thumbnail(photo, content_w, content_h)
        } else {
            imageops::resize(photo, content_w, content_h, imageops::FilterType::Triangle)
        };
        for (x, y, p) in resized.enumerate_pixels() {
            let at = (y as usize * width + x as usize) * 3;
            data[at..at + 3].copy_from_slice(&[p[2] as f32, p[1] as f32, p[0] as f32]);
        }
        (Map { height, width, channels: 3, data }, scale)
    }

    /// The network's faces in `photo` scoring at least `min_score`, before NMS.
    fn candidates(&self, photo: &RgbImage, min_score: f32) -> Vec<Candidate> {
        let (canvas, scale) = Self::canvas(photo);
        let to_photo = |v: f32| v / scale;
        let mut candidates = Vec::new();
        for (level, stride) in self.forward(&canvas).iter().zip(STRIDES) {
            for (cell, out) in level.data.chunks_exact(HEAD_OUTPUTS).enumerate() {
                let score = (out[0].clamp(0.0, 1.0) * out[1].clamp(0.0, 1.0)).sqrt();
                if score < min_score {
                    continue;
                }
                let (col, row) = ((cell % level.width) as f32, (cell / level.width) as f32);
                let s = stride as f32;
                let b = &out[2..6];
                let (cx, cy) = ((col + b[0]) * s, (row + b[1]) * s);
                let (bw, bh) = (b[2].exp() * s, b[3].exp() * s);
                let corners = [cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0].map(to_photo);
                let p = &out[6..16];
                let landmarks = std::array::from_fn(|k| [to_photo((p[2 * k] + col) * s), to_photo((p[2 * k + 1] + row) * s)]);
                candidates.push(Candidate { score, corners, landmarks });
            }
        }
        candidates
    }
}

/// A `[rows][rest]` matrix as `[rest][rows]`: ONNX keeps a convolution's output channel first,
/// the kernels want it last (fastest).
fn transpose(matrix: &[f32], rows: usize) -> Vec<f32> {
    let rest = matrix.len() / rows;
    (0..matrix.len()).map(|i| matrix[(i % rows) * rest + i / rows]).collect()
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}


/// What YuNet needs of an ONNX file: its float tensors by name and its convolutions' wiring,
/// read straight from the protocol-buffer encoding (ModelProto -> GraphProto -> NodeProto,
/// TensorProto; field numbers from onnx.proto).
mod onnx {
    use anyhow::{bail, ensure, Context, Result};
    use std::collections::HashMap;

    pub struct Tensor {
        pub dims: Vec<usize>,
        pub values: Vec<f32>,
    }

    /// A `Conv` node's first input, weight, bias and output names.
    pub struct Conv {
        pub input: String,
        pub weight: String,
        pub bias: String,
        pub output: String,
    }

    pub struct Graph {
        pub tensors: HashMap<String, Tensor>,
        pub convs: Vec<Conv>,
    }

    enum Value<'a> {
        Varint(u64),
        Bytes(&'a [u8]),
        Fixed,
    }

    /// The fields of one message, in order, as (field number, value).
    fn fields(mut buf: &[u8]) -> impl Iterator<Item = Result<(u64, Value<'_>)>> {
        std::iter::from_fn(move || {
            if buf.is_empty() {
                return None;
            }
            let field = (|| {
                let key = varint(&mut buf)?;
                let value = match key & 7 {
                    0 => Value::Varint(varint(&mut buf)?),
                    1 | 5 => {
                        let n = if key & 7 == 1 { 8 } else { 4 };
                        ensure!(buf.len() >= n, "truncated fixed-size field");
                        buf = &buf[n..];
                        Value::Fixed
                    }
                    2 => {
                        let n = usize::try_from(varint(&mut buf)?)?;
                        ensure!(buf.len() >= n, "field of {n} bytes past the end");
                        let (bytes, rest) = buf.split_at(n);
                        buf = rest;
                        Value::Bytes(bytes)
                    }
                    wire => bail!("unsupported wire type {wire}"),
                };
                Ok((key >> 3, value))
            })();
            if field.is_err() {
                buf = &[];
            }
            Some(field)
        })
    }

    fn varint(buf: &mut &[u8]) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = buf.split_first().context("truncated varint")?;
            *buf = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        bail!("varint longer than 10 bytes")
    }

    fn string(bytes: &[u8]) -> Result<String> {
        Ok(std::str::from_utf8(bytes).context("a name that is not UTF-8")?.to_owned())
    }

    pub fn read(model: &[u8]) -> Result<Graph> {
        let mut graph = None;
        for field in fields(model) {
            if let (7, Value::Bytes(bytes)) = field? {
                graph = Some(bytes);
            }
        }
        let mut out = Graph { tensors: HashMap::new(), convs: Vec::new() };
        for field in fields(graph.context("ONNX model without a graph")?) {
            match field? {
                (1, Value::Bytes(node)) => {
                    let (mut inputs, mut outputs, mut op) = (Vec::new(), Vec::new(), String::new());
                    for field in fields(node) {
                        match field? {
                            (1, Value::Bytes(b)) => inputs.push(string(b)?),
                            (2, Value::Bytes(b)) => outputs.push(string(b)?),
                            (4, Value::Bytes(b)) => op = string(b)?,
                            _ => {}
                        }
                    }
                    if op == "Conv" {
                        let [input, weight, bias]: [String; 3] = inputs.try_into().map_err(|i: Vec<String>| anyhow::anyhow!("a Conv node with inputs {i:?}"))?;
                        let output = outputs.into_iter().next().context("a Conv node without an output")?;
                        out.convs.push(Conv { input, weight, bias, output });
                    }
                }
                (5, Value::Bytes(tensor)) => {
                    let (name, tensor) = read_tensor(tensor)?;
                    out.tensors.insert(name, tensor);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// A float TensorProto: dims (1), data_type (2, 1 = float), float_data (4) or raw_data (9), name (8).
    fn read_tensor(bytes: &[u8]) -> Result<(String, Tensor)> {
        let (mut name, mut dims, mut values, mut data_type) = (String::new(), Vec::new(), Vec::new(), 0);
        let floats = |b: &[u8]| b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<_>>();
        for field in fields(bytes) {
            match field? {
                (1, Value::Varint(d)) => dims.push(usize::try_from(d)?),
                (1, Value::Bytes(mut packed)) => {
                    while !packed.is_empty() {
                        dims.push(usize::try_from(varint(&mut packed)?)?);
                    }
                }
                (2, Value::Varint(t)) => data_type = t,
                (4, Value::Bytes(b)) | (9, Value::Bytes(b)) => values = floats(b),
                (8, Value::Bytes(b)) => name = string(b)?,
                _ => {}
            }
        }
        if data_type != 1 {
            // Not a float tensor (the shape constants of the graph's reshapes): not one YuNet's weights.
            values.clear();
        } else {
            ensure!(values.len() == dims.iter().product::<usize>(), "tensor {name}: {} values for shape {dims:?}", values.len());
        }
        Ok((name, Tensor { dims, values }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn astronaut() -> RgbImage {
        image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/astronaut.jpg")).unwrap().to_rgb8()
    }

    #[test]
    fn the_network_matches_onnx_runtime() {
        // A synthetic 96x64 canvas both sides compute exactly; ONNX Runtime 1.32's head outputs
        // at two cells of each stride (scripts/yunet_reference.py).
        let (height, width) = (64, 96);
        let data = (0..height * width * 3).map(|i| ((7 * (i / 3 % width) + 13 * (i / 3 / width) + 29 * (i % 3)) % 256) as f32).collect();
        let heads = YuNet::new().unwrap().forward(&Map { height, width, channels: 3, data });
        let reference: [(usize, usize, [f32; HEAD_OUTPUTS]); 6] = [
            (8, 0, [0.615101, 0.0, 0.588433, 0.352681, 0.979823, 1.12645, -0.134079, -0.386617, 0.536844, -0.576261, -0.209686, 0.290472, -0.11697, 1.12853, 0.321765, 1.01977]),
            (8, 13, [0.609691, 0.000648767, 0.631577, 1.11967, 1.51167, 1.51321, -0.206472, -0.0197074, 0.94411, -0.0844164, 0.227993, 0.505014, -0.0611625, 1.25989, 0.868551, 1.22342]),
            (16, 0, [0.649272, 3.32296e-05, 0.999846, 0.997099, 0.859722, 1.05558, 0.0809692, 0.550674, 1.3992, 0.379005, 0.792262, 1.2801, 0.378354, 1.91709, 1.47181, 1.78283]),
            (16, 7, [0.649846, 7.21812e-05, 0.894399, 1.00404, 1.33786, 1.35704, -0.318932, 0.458501, 1.51585, 0.182964, 0.720567, 1.34084, 0.200652, 2.0378, 1.74955, 1.79815]),
            (32, 0, [0.606456, 2.0504e-05, 0.867844, 0.50778, 0.871717, 0.980333, 0.315371, -0.0938844, 1.28788, -0.0841821, 0.872942, 0.600212, 0.442143, 1.03738, 1.35802, 1.04774]),
            (32, 4, [0.620981, 6.80387e-05, 0.450377, 0.548465, 0.960302, 1.05199, 0.0563579, -0.0901769, 1.11658, -0.0875295, 0.575532, 0.873054, 0.163875, 1.27786, 1.01171, 1.26505]),
        ];
        for (stride, cell, want) in reference {
            let level = &heads[STRIDES.iter().position(|&s| s == stride).unwrap()];
            assert_eq!((level.height, level.width), (height / stride, width / stride));
            let got = &level.data[cell * HEAD_OUTPUTS..][..HEAD_OUTPUTS];
            let close = got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 1e-4 + 1e-4 * w.abs());
            assert!(close, "stride {stride}, cell {cell}: {got:?}, ONNX Runtime {want:?}");
        }
    }

    #[test]
    fn the_astronauts_landmarks_are_her_eyes_nose_and_mouth_corners() {
        let faces = YuNet::new().unwrap().detect(&astronaut(), MIN_SCORE).unwrap();
        assert_eq!(faces.len(), 1, "{faces:?}");
        let [right_eye, left_eye, nose, mouth_right, mouth_left] = faces[0].landmarks.unwrap();
        // In the image: her right eye is on the viewer's left, and the eyes are above the nose,
        // the nose above the mouth.
        assert!(right_eye[0] < left_eye[0] && mouth_right[0] < mouth_left[0], "{:?}", faces[0]);
        assert!(right_eye[1].max(left_eye[1]) < nose[1] && nose[1] < mouth_right[1].min(mouth_left[1]), "{:?}", faces[0]);
        let inside = |[x, y]: [f32; 2]| faces[0].contains((x as u32, y as u32));
        assert!([right_eye, left_eye, nose, mouth_right, mouth_left].into_iter().all(inside), "{:?}", faces[0]);
    }

    #[test]
    fn a_damaged_onnx_file_is_an_error_not_a_panic() {
        for cut in [10, 1000, ONNX.len() / 2, ONNX.len() - 3] {
            assert!(YuNet::from_onnx(&ONNX[..cut]).is_err(), "cut at {cut}");
        }
    }
}
