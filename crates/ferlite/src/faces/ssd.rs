//! face-api's SSD MobileNet v1 face detector, re-implemented on CPU. The weights are the files of the
//! npm package `@vladmandic/face-api` 1.7.15 (MIT; `assets/face-api/`), compiled into the binary
//! byte for byte and decoded here from their tfjs format; the network follows the package's
//! `src/ssdMobilenetv1/` (MobileNet v1 at 512x512, six SSD heads, 5,118 anchors, NMS).

use super::FaceBox;
use crate::nn::bf16::PackedMatrix;
use crate::nn::Precision;
use crate::nn::gemm::{row_major, sgemm};
use anyhow::{bail, Context, Result};
use image::RgbImage;
use rayon::prelude::*;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

const MANIFEST: &str = include_str!("../../../../assets/face-api/ssd_mobilenetv1_model-weights_manifest.json");
const WEIGHTS: &[u8] = include_bytes!("../../../../assets/face-api/ssd_mobilenetv1_model.bin");

/// The network's input side: photos are padded to a square (bottom/right) and resized to this.
const INPUT_SIZE: usize = 512;
/// Lowest score of a face. face-api's default is 0.5; at 0.4 the SSD finds 85.5% of val/ faces
/// pasted into grid photos instead of 81.5% (both detectors merged: 91.8% instead of 90.7%) and no
/// false face in scikit-image's 23 sample pictures without people, whose highest false score is a
/// coin's 0.36 (decision 12; tests/everyday_photos.rs). The true faces of face-api's demo photos
/// score 0.67 and up.
pub const MIN_CONFIDENCE: f32 = 0.4;
/// face-api's (`locateFaces`).
const NMS_IOU: f32 = 0.5;
const MAX_RESULTS: usize = 100;
/// The stem and the first blocks, whose maps are 256x256 and 128x128, run in this many bands of
/// rows: the detector's peak memory falls from ~24 MB to ~12 MB.
const BANDED_BLOCKS: usize = 3;
const BANDS: usize = 4;
/// The BatchNorm epsilon of face-api's `mobileNetV1.ts`.
const BN_EPSILON: f32 = 0.001;
/// Fewest positions in a chunk of rows when a layer is split over threads: each chunk's GEMM packs
/// the layer's weights afresh (up to 4 MB), which must stay small beside its multiply-adds.
const MIN_CHUNK_POSITIONS: usize = 128;

/// An activation map, height x width x channels (channels fastest, as in tfjs; the layer knows how
/// many). `data` holds the map's rows `rows`: all of them, or one band while the first blocks run
/// band by band (see [`forward_in_bands`]).
#[derive(Clone)]
struct Map {
    height: usize,
    width: usize,
    rows: Range<usize>,
    data: Vec<f32>,
}

impl Map {
    fn whole(height: usize, width: usize, data: Vec<f32>) -> Map {
        Map { height, width, rows: 0..height, data }
    }

    /// The `channels` values at row `y` (of the whole map, inside `rows`), column `x`.
    fn pixel(&self, y: usize, x: usize, channels: usize) -> &[f32] {
        debug_assert!(self.rows.contains(&y), "row {y} outside the band {:?}", self.rows);
        &self.data[((y - self.rows.start) * self.width + x) * channels..][..channels]
    }
}

/// What [`forward_in_bands`] needs of a layer: its window, and its output rows `rows` computed from
/// a map holding (at least) the input rows they depend on.
trait Layer {
    fn kernel_and_stride(&self) -> (usize, usize);
    fn forward_rows(&self, x: &Map, rows: Range<usize>) -> Map;

    fn forward(&self, x: &Map) -> Map {
        let (kernel, stride) = self.kernel_and_stride();
        self.forward_rows(x, 0..same_padding(x.height, kernel, stride).0)
    }

    /// The input rows (of a map `input_height` high) that output rows `rows` read.
    fn input_rows(&self, rows: &Range<usize>, input_height: usize) -> Range<usize> {
        let (kernel, stride) = self.kernel_and_stride();
        let top = same_padding(input_height, kernel, stride).1;
        (rows.start * stride).saturating_sub(top)..((rows.end - 1) * stride + kernel).saturating_sub(top).min(input_height)
    }
}

/// `layers` applied in turn to `input`, computed `bands` bands of output rows at a time so that
/// no intermediate map is ever whole: the first MobileNet blocks' maps are 8-16 MB each at
/// 256x256, a band of them a fraction of that. Each band recomputes the few rows its layers'
/// windows share with the next band; every output value is the same arithmetic as unbanded.
fn forward_in_bands(layers: &[&dyn Layer], input: &Map, bands: usize) -> Map {
    let mut heights = vec![input.height];
    let mut width = input.width;
    for layer in layers {
        let (kernel, stride) = layer.kernel_and_stride();
        heights.push(same_padding(*heights.last().expect("input height"), kernel, stride).0);
        width = same_padding(width, kernel, stride).0;
    }
    let height = *heights.last().expect("output height");
    let mut data = Vec::new();
    for band in 0..bands {
        let rows = band * height / bands..(band + 1) * height / bands;
        if rows.is_empty() {
            continue;
        }
        // The rows each layer must produce: the band for the last, what the next one reads for the others.
        let mut produce = vec![rows];
        for (layer, &input_height) in layers[1..].iter().zip(&heights[1..]).rev() {
            produce.push(layer.input_rows(produce.last().expect("rows"), input_height));
        }
        produce.reverse();
        let mut x = layers[0].forward_rows(input, produce[0].clone());
        for (layer, rows) in layers[1..].iter().zip(&produce[1..]) {
            x = layer.forward_rows(&x, rows.clone());
        }
        data.extend_from_slice(&x.data);
    }
    Map::whole(height, width, data)
}

/// TensorFlow's "same" padding: output side and the padding before the first pixel.
fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let output = input.div_ceil(stride);
    let total = ((output - 1) * stride + kernel).saturating_sub(input);
    (output, total / 2)
}

/// Output rows `rows` of a layer, `width` positions of `channels` each, computed by `compute(chunk, out)` in
/// chunks of rows on rayon's threads (all at once on this thread when there is one). A chunk computes its rows with the
/// same arithmetic as the whole would, so the result does not depend on the number of threads.
fn in_row_chunks(rows: Range<usize>, (width, channels): (usize, usize), compute: impl Fn(Range<usize>, &mut [f32]) + Sync) -> Vec<f32> {
    let row_len = width * channels;
    let mut data = vec![0.0f32; rows.len() * row_len];
    if data.is_empty() {
        return data;
    }
    let threads = rayon::current_num_threads();
    // A few chunks per thread, so that a thread busy elsewhere (SeetaFace, MMOD or YuNet, under `Accurate`) is
    // made up for by the others; never so few rows that a chunk's GEMM gets inefficient.
    let chunk = rows.len().div_ceil(4 * threads).max(MIN_CHUNK_POSITIONS.div_ceil(width));
    if threads == 1 || chunk >= rows.len() {
        // On this thread: handing one chunk to rayon's pool and back costs a wake-up per layer.
        compute(rows, &mut data);
        return data;
    }
    data.par_chunks_mut(chunk * row_len).enumerate().for_each(|(i, out)| {
        let start = rows.start + i * chunk;
        compute(start..start + out.len() / row_len, out);
    });
    data
}

/// A tensor's values as the weights file stores them: most are uint8 codes of an affine map, kept
/// as such (5.5 MB instead of 22 MB as f32) and decoded layer by layer when the detector runs.
enum Values {
    F32(Vec<f32>),
    Uint8 { codes: &'static [u8], min: f32, scale: f32 },
}

impl Values {
    fn to_f32(&self) -> Cow<'_, [f32]> {
        match self {
            Values::F32(values) => Cow::Borrowed(values),
            Values::Uint8 { codes, min, scale } => Cow::Owned(codes.iter().map(|&v| min + scale * v as f32).collect()),
        }
    }

    fn into_f32(self) -> Vec<f32> {
        match self {
            Values::F32(values) => values,
            quantised => quantised.to_f32().into_owned(),
        }
    }
}

/// A convolution with bias and optional ReLU6; weights as tfjs stores them, `[kh][kw][in][out]`,
/// which is the `(k*k*in) x out` matrix an HWC im2col row multiplies.
struct Conv {
    /// The weights packed for bfloat16 products, when the detector runs in bfloat16 and the shape
    /// allows (`k*k*in` even, `out` a multiple of 16); packed once (twice the bytes of `weights`'
    /// uint8 codes) rather than per call, which cost a fifth of the detector's time.
    bf16: Option<PackedMatrix>,
    kernel: usize,
    stride: usize,
    inputs: usize,
    outputs: usize,
    weights: Values,
    bias: Vec<f32>,
    relu6: bool,
}

impl Layer for Conv {
    fn kernel_and_stride(&self) -> (usize, usize) {
        (self.kernel, self.stride)
    }

    fn forward_rows(&self, x: &Map, out_rows: Range<usize>) -> Map {
        let (k, c) = (self.kernel, self.inputs);
        let (height, top) = same_padding(x.height, k, self.stride);
        let (width, left) = same_padding(x.width, k, self.stride);
        let patch = k * k * c;
        // Decoded once per layer, shared by the chunks (not needed for bfloat16).
        let weights = if self.bf16.is_some() { Cow::Borrowed(&[][..]) } else { self.weights.to_f32() };
        let data = in_row_chunks(out_rows.clone(), (width, self.outputs), |chunk_rows, out| {
            let positions = chunk_rows.len() * width;
            let im2col;
            let rows: &[f32] = if k == 1 && self.stride == 1 {
                &x.data[(chunk_rows.start - x.rows.start) * width * c..(chunk_rows.end - x.rows.start) * width * c]
            } else {
                let mut cols = vec![0.0f32; positions * patch];
                for (row_index, oy) in chunk_rows.enumerate() {
                    for ox in 0..width {
                        let row = &mut cols[(row_index * width + ox) * patch..][..patch];
                        for ky in 0..k {
                            let iy = (oy * self.stride + ky) as isize - top as isize;
                            if iy < 0 || iy >= x.height as isize {
                                continue;
                            }
                            for kx in 0..k {
                                let ix = (ox * self.stride + kx) as isize - left as isize;
                                if ix < 0 || ix >= x.width as isize {
                                    continue;
                                }
                                row[(ky * k + kx) * c..][..c].copy_from_slice(x.pixel(iy as usize, ix as usize, c));
                            }
                        }
                    }
                }
                im2col = cols;
                &im2col
            };
            match &self.bf16 {
                Some(packed) => packed.multiply(rows, out, &mut Vec::new()),
                None => sgemm(positions, patch, self.outputs, rows, row_major(patch), &weights, row_major(self.outputs), 0.0, out, row_major(self.outputs)),
            }
            for pixel in out.chunks_mut(self.outputs) {
                for (v, b) in pixel.iter_mut().zip(&self.bias) {
                    *v += b;
                    if self.relu6 {
                        *v = v.clamp(0.0, 6.0);
                    }
                }
            }
        });
        Map { height, width, rows: out_rows, data }
    }
}

/// A 3x3 depthwise convolution followed by BatchNorm (folded into `scale`, `shift`) and ReLU6.
struct Depthwise {
    stride: usize,
    channels: usize,
    /// `[ky][kx][channel]`.
    weights: Vec<f32>,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl Layer for Depthwise {
    fn kernel_and_stride(&self) -> (usize, usize) {
        (3, self.stride)
    }

    fn forward_rows(&self, x: &Map, out_rows: Range<usize>) -> Map {
        let c = self.channels;
        let (height, top) = same_padding(x.height, 3, self.stride);
        let (width, left) = same_padding(x.width, 3, self.stride);
        let data = in_row_chunks(out_rows.clone(), (width, c), |chunk_rows, out| {
            for (oy, out_row) in chunk_rows.zip(out.chunks_exact_mut(width * c)) {
                if crate::nn::direct_conv::available() {
                    // SAFETY: the CPU has AVX2 (checked).
                    unsafe { self.output_row_avx2(x, oy, (top, left), out_row) }
                } else {
                    self.output_row(x, oy, (top, left), out_row)
                }
            }
        });
        Map { height, width, rows: out_rows, data }
    }
}

impl Depthwise {
    /// Output row `oy` (`out_row`, zeros on entry) from the map `x` padded by `top` rows and `left`
    /// columns. Tap by tap over the whole row: long runs the compiler vectorises, with the same
    /// additions in the same order per value as pixel by pixel (taps in (ky, kx) order, the zero
    /// padding skipped).
    #[inline(always)]
    fn output_row(&self, x: &Map, oy: usize, (top, left): (usize, usize), out_row: &mut [f32]) {
        let c = self.channels;
        let width = out_row.len() / c;
        for ky in 0..3 {
            let iy = (oy * self.stride + ky) as isize - top as isize;
            if iy < 0 || iy >= x.height as isize {
                continue;
            }
            let in_row = &x.data[(iy as usize - x.rows.start) * x.width * c..][..x.width * c];
            for kx in 0..3 {
                // Output columns whose input column `ox * stride + kx - left` is inside the map.
                let first = left.saturating_sub(kx).div_ceil(self.stride);
                let end = (x.width + left).saturating_sub(kx).div_ceil(self.stride).min(width);
                if first >= end {
                    continue;
                }
                let weight = &self.weights[(ky * 3 + kx) * c..][..c];
                let inputs = in_row.chunks_exact(c).skip(first * self.stride + kx - left).step_by(self.stride);
                for (acc, input) in out_row[first * c..end * c].chunks_exact_mut(c).zip(inputs) {
                    for ((a, i), w) in acc.iter_mut().zip(input).zip(weight) {
                        *a += i * w;
                    }
                }
            }
        }
        for acc in out_row.chunks_exact_mut(c) {
            for ((a, s), t) in acc.iter_mut().zip(&self.scale).zip(&self.shift) {
                *a = (*a * s + t).clamp(0.0, 6.0);
            }
        }
    }

    /// [`output_row`](Self::output_row) compiled for AVX2: 8 lanes instead of SSE's 4, the same
    /// arithmetic (Rust never fuses a multiply and an add on its own).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn output_row_avx2(&self, x: &Map, oy: usize, padding: (usize, usize), out_row: &mut [f32]) {
        self.output_row(x, oy, padding, out_row)
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn output_row_avx2(&self, x: &Map, oy: usize, padding: (usize, usize), out_row: &mut [f32]) {
        self.output_row(x, oy, padding, out_row)
    }
}

/// One SSD head: box encodings (4 per anchor) and class logits (3 per anchor) at every position.
struct BoxPredictor {
    boxes: Conv,
    classes: Conv,
}

pub struct SsdDetector {
    stem: Conv,
    /// MobileNet v1 blocks 1-13: depthwise then pointwise.
    blocks: Vec<(Depthwise, Conv)>,
    /// The extra feature layers 0-7 of the prediction network.
    extra: Vec<Conv>,
    heads: Vec<BoxPredictor>,
    /// `[5118][4]` anchor boxes (y0, x0, y1, x1), normalised to the input.
    anchors: Vec<f32>,
}

#[derive(Deserialize)]
struct ManifestGroup {
    weights: Vec<ManifestEntry>,
}

#[derive(Deserialize)]
struct ManifestEntry {
    name: String,
    shape: Vec<usize>,
    quantization: Option<Quantization>,
}

#[derive(Deserialize)]
struct Quantization {
    scale: f32,
    min: f32,
    dtype: String,
}

/// A tensor's shape and values.
type Named = HashMap<String, (Vec<usize>, Values)>;

/// Every tensor of a tfjs weights file, by name.
fn read_tfjs_weights(manifest: &str, bytes: &'static [u8]) -> Result<Named> {
    let groups: Vec<ManifestGroup> = serde_json::from_str(manifest).context("tfjs weights manifest")?;
    let mut tensors = HashMap::new();
    let mut offset = 0;
    for entry in groups.into_iter().flat_map(|g| g.weights) {
        let count: usize = entry.shape.iter().product();
        let values = match &entry.quantization {
            Some(q) if q.dtype == "uint8" => {
                let raw = bytes.get(offset..offset + count).context("tfjs weights file too short")?;
                offset += count;
                Values::Uint8 { codes: raw, min: q.min, scale: q.scale }
            }
            Some(q) => bail!("{}: unsupported quantisation {}", entry.name, q.dtype),
            None => {
                let raw = bytes.get(offset..offset + 4 * count).context("tfjs weights file too short")?;
                offset += 4 * count;
                Values::F32(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            }
        };
        tensors.insert(entry.name, (entry.shape, values));
    }
    if offset != bytes.len() {
        bail!("tfjs weights file has {} bytes, the manifest describes {offset}", bytes.len());
    }
    Ok(tensors)
}

impl SsdDetector {
    /// The detector from the weights compiled into the binary, its convolutions' products in
    /// `precision` (the caller checked the CPU has it: [`crate::nn::bf16::available`]).
    pub fn new(precision: Precision) -> Result<Self> {
        let mut tensors = read_tfjs_weights(MANIFEST, WEIGHTS).context("embedded SSD face detector weights")?;
        let mut take = |name: &str| tensors.remove(name).with_context(|| format!("SSD face detector weights lack {name}"));
        let mut conv = |prefix: &str, bias: &str, stride: usize, relu6: bool| -> Result<Conv> {
            let (shape, weights) = take(&format!("{prefix}/weights"))?;
            let bias = take(&format!("{prefix}/{bias}"))?.1.into_f32();
            let (kernel, inputs, outputs) = (shape[0], shape[2], shape[3]);
            let bf16 = match precision {
                Precision::Bf16 => PackedMatrix::new(&weights.to_f32(), kernel * kernel * inputs, outputs),
                // The detectors have no int8 kernels: f32 stands in.
                Precision::F32 | Precision::Int8 => None,
            };
            Ok(Conv { bf16, kernel, stride, inputs, outputs, weights, bias, relu6 })
        };
        let stem = conv("MobilenetV1/Conv2d_0_pointwise", "convolution_bn_offset", 2, true)?;
        let mut pointwise = Vec::new();
        for i in 1..=13 {
            pointwise.push(conv(&format!("MobilenetV1/Conv2d_{i}_pointwise"), "convolution_bn_offset", 1, true)?);
        }
        let extra = (0..8).map(|i| conv(&format!("Prediction/Conv2d_{i}_pointwise"), "convolution_bn_offset", 1 + i % 2, true)).collect::<Result<Vec<_>>>()?;
        let heads = (0..6)
            .map(|i| Ok(BoxPredictor { boxes: conv(&format!("Prediction/BoxPredictor_{i}/BoxEncodingPredictor"), "biases", 1, false)?, classes: conv(&format!("Prediction/BoxPredictor_{i}/ClassPredictor"), "biases", 1, false)? }))
            .collect::<Result<Vec<_>>>()?;
        let mut blocks = Vec::new();
        for (i, pointwise) in (1..=13).zip(pointwise) {
            let prefix = format!("MobilenetV1/Conv2d_{i}_depthwise");
            let (shape, weights) = take(&format!("{prefix}/depthwise_weights"))?;
            let weights = weights.into_f32();
            let [gamma, beta, mean, variance] = ["gamma", "beta", "moving_mean", "moving_variance"].map(|n| take(&format!("{prefix}/BatchNorm/{n}")).map(|(_, v)| v.into_f32()).unwrap_or_default());
            if gamma.len() != shape[2] || beta.len() != shape[2] || mean.len() != shape[2] || variance.len() != shape[2] {
                bail!("{prefix}: BatchNorm parameters missing or of the wrong size");
            }
            let scale: Vec<f32> = gamma.iter().zip(&variance).map(|(g, v)| g / (v + BN_EPSILON).sqrt()).collect();
            let shift = beta.iter().zip(&mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
            let stride = if [2, 4, 6, 12].contains(&i) { 2 } else { 1 };
            blocks.push((Depthwise { stride, channels: shape[2], weights, scale, shift }, pointwise));
        }
        let anchors = take("Output/extra_dim")?.1.into_f32();
        Ok(SsdDetector { stem, blocks, extra, heads, anchors })
    }

    /// Faces in `photo` with face-api's score above `min_confidence`, best first, in photo pixels.
    pub fn detect(&self, photo: &RgbImage, min_confidence: f32) -> Vec<FaceBox> {
        let (w, h) = photo.dimensions();
        if w == 0 || h == 0 {
            return Vec::new();
        }
        let side = w.max(h) as f32;
        // Larger photos are first shrunk to the input size with a proper filter (face-api samples
        // them bilinearly, which aliases); boxes are normalised, so they map back all the same.
        let shrunk;
        let input = if w.max(h) as usize > INPUT_SIZE {
            let scale = INPUT_SIZE as f32 / side;
            shrunk = image::imageops::resize(photo, ((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1), image::imageops::FilterType::Triangle);
            &shrunk
        } else {
            photo
        };
        let (boxes, scores) = self.forward(input_map(input));
        let mut candidates: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] > min_confidence).collect();
        candidates.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut kept: Vec<usize> = Vec::new();
        for i in candidates {
            if kept.len() == MAX_RESULTS {
                break;
            }
            if kept.iter().all(|&j| iou(&boxes[i], &boxes[j]) <= NMS_IOU) {
                kept.push(i);
            }
        }
        kept.into_iter()
            .filter_map(|i| {
                let [y0, x0, y1, x1] = boxes[i].map(|v| v.clamp(0.0, 1.0) * side);
                let (x, y) = (x0.round().min(w as f32 - 1.0), y0.round().min(h as f32 - 1.0));
                let (width, height) = ((x1.min(w as f32) - x).round(), (y1.min(h as f32) - y).round());
                (width >= 1.0 && height >= 1.0).then(|| FaceBox { x: x as u32, y: y as u32, width: width as u32, height: height as u32, score: Some(scores[i] as f64), detector: Some(super::Detector::Ssd), landmarks: None })
            })
            .collect()
    }

    /// The stem and the first [`BANDED_BLOCKS`] blocks, in order: the layers run band by band.
    fn banded_layers(&self) -> Vec<&dyn Layer> {
        let mut layers: Vec<&dyn Layer> = vec![&self.stem];
        for (depthwise, pointwise) in &self.blocks[..BANDED_BLOCKS] {
            layers.extend([depthwise as &dyn Layer, pointwise]);
        }
        layers
    }

    /// Decoded boxes `(y0, x0, y1, x1)` normalised to the padded square, and face scores, per anchor.
    fn forward(&self, input: Map) -> (Vec<[f32; 4]>, Vec<f32>) {
        let mut x = forward_in_bands(&self.banded_layers(), &input, BANDS);
        drop(input);
        let mut conv11 = None;
        for (i, (depthwise, pointwise)) in self.blocks.iter().enumerate().skip(BANDED_BLOCKS) {
            let filtered = depthwise.forward(&x);
            // Freed before the pointwise output exists, which is larger.
            drop(x);
            x = pointwise.forward(&filtered);
            if i + 1 == 11 {
                conv11 = Some(x.clone());
            }
        }
        let mut features = vec![conv11.expect("13 blocks"), x];
        let mut y = self.extra[0].forward(&features[1]);
        for pair in self.extra[1..].chunks(2) {
            let strided = pair[0].forward(&y);
            if let Some(next) = pair.get(1) {
                y = next.forward(&strided);
            }
            features.push(strided);
        }
        let (mut encodings, mut logits) = (Vec::new(), Vec::new());
        for (map, head) in features.iter().zip(&self.heads) {
            encodings.extend(head.boxes.forward(map).data);
            logits.extend(head.classes.forward(map).data);
        }
        let boxes = encodings
            .chunks_exact(4)
            .zip(self.anchors.chunks_exact(4))
            .map(|(e, a)| {
                let (size_y, size_x) = (a[2] - a[0], a[3] - a[1]);
                let (centre_y, centre_x) = (a[0] + size_y / 2.0 + e[0] / 10.0 * size_y, a[1] + size_x / 2.0 + e[1] / 10.0 * size_x);
                let (half_y, half_x) = ((e[2] / 5.0).exp() * size_y / 2.0, (e[3] / 5.0).exp() * size_x / 2.0);
                [centre_y - half_y, centre_x - half_x, centre_y + half_y, centre_x + half_x]
            })
            .collect();
        // Three logits per anchor (background, face, unused); face-api takes sigmoid of the second.
        let scores = logits.chunks_exact(3).map(|l| 1.0 / (1.0 + (-l[1]).exp())).collect();
        (boxes, scores)
    }
}

/// The photo padded with black to a square at its bottom/right and resized (bilinear, corners not
/// aligned) to 512x512, scaled to -1..1: what face-api's `toBatchTensor(512, false)` feeds the net.
fn input_map(photo: &RgbImage) -> Map {
    let (w, h) = (photo.width() as usize, photo.height() as usize);
    let scale = w.max(h) as f32 / INPUT_SIZE as f32;
    let last = w.max(h) - 1;
    // Outside the photo is the black padding; beyond the square, tfjs repeats its last row/column.
    let pixel = |x: usize, y: usize| {
        let (x, y) = (x.min(last), y.min(last));
        if x < w && y < h { photo.get_pixel(x as u32, y as u32).0.map(f32::from) } else { [0.0; 3] }
    };
    let data = in_row_chunks(0..INPUT_SIZE, (INPUT_SIZE, 3), |rows, out| {
        for (oy, row) in rows.zip(out.chunks_exact_mut(INPUT_SIZE * 3)) {
            let sy = oy as f32 * scale;
            let (y0, fy) = (sy.floor() as usize, sy.fract());
            for (ox, value) in row.chunks_exact_mut(3).enumerate() {
                let sx = ox as f32 * scale;
                let (x0, fx) = (sx.floor() as usize, sx.fract());
                let (a, b, c, d) = (pixel(x0, y0), pixel(x0 + 1, y0), pixel(x0, y0 + 1), pixel(x0 + 1, y0 + 1));
                for ch in 0..3 {
                    let top = a[ch] + (b[ch] - a[ch]) * fx;
                    let bottom = c[ch] + (d[ch] - c[ch]) * fx;
                    value[ch] = (top + (bottom - top) * fy) / 127.5 - 1.0;
                }
            }
        }
    });
    Map::whole(INPUT_SIZE, INPUT_SIZE, data)
}

/// Intersection over union of two boxes given by opposite corners (either axis order).
pub(super) fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let intersection = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0) * (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let union = area(a) + area(b) - intersection;
    if union <= 0.0 { 0.0 } else { intersection / union }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Layers split their rows over threads (`in_row_chunks`): the scores and boxes of every anchor
    /// must not depend on how many.
    #[test]
    fn every_anchor_is_the_same_on_one_thread_and_on_three() {
        let detector = SsdDetector::new(Precision::F32).unwrap();
        let photo = image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/astronaut.jpg")).unwrap().to_rgb8();
        let on = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| detector.forward(input_map(&photo)));
        let ((boxes_1, scores_1), (boxes_3, scores_3)) = (on(1), on(3));
        assert_eq!(scores_1.len(), 5118);
        assert!(scores_1 == scores_3 && boxes_1 == boxes_3, "results differ between 1 and 3 threads");
    }

    /// `--precision bf16` finds the f32 detector's faces, boxes within 2 px and scores within 0.02.
    #[test]
    fn bf16_products_find_the_faces_f32_finds() {
        if !crate::nn::bf16::available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        let photo = image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/astronaut.jpg")).unwrap().to_rgb8();
        let (f32, bf16) = (SsdDetector::new(Precision::F32).unwrap().detect(&photo, 0.2), SsdDetector::new(Precision::Bf16).unwrap().detect(&photo, 0.2));
        assert!(!f32.is_empty() && f32.len() == bf16.len(), "f32 {f32:?}, bf16 {bf16:?}");
        for (a, b) in f32.iter().zip(&bf16) {
            let near = |p: u32, q: u32| p.abs_diff(q) <= 2;
            assert!(near(a.x, b.x) && near(a.y, b.y) && near(a.width, b.width) && near(a.height, b.height), "f32 {a:?}, bf16 {b:?}");
            let (sa, sb) = (a.score.unwrap(), b.score.unwrap());
            assert!((sa - sb).abs() < 0.02 && sa != sb, "scores: f32 {sa}, bf16 {sb} (equal: bf16 did not run)");
        }
    }

    #[test]
    fn the_banded_first_blocks_compute_exactly_what_whole_maps_do() {
        let detector = SsdDetector::new(Precision::F32).unwrap();
        let photo = image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/astronaut.jpg")).unwrap().to_rgb8();
        let input = input_map(&photo);
        let layers = detector.banded_layers();
        let mut whole = layers[0].forward(&input);
        for layer in &layers[1..] {
            whole = layer.forward(&whole);
        }
        // 7 bands of the 128 output rows do not divide evenly: uneven band edges are covered too.
        for bands in [BANDS, 7] {
            let banded = forward_in_bands(&layers, &input, bands);
            assert_eq!((banded.height, banded.width, banded.rows.clone()), (whole.height, whole.width, whole.rows.clone()));
            let worst = banded.data.iter().zip(&whole.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(banded.data.len() == whole.data.len() && worst == 0.0, "{bands} bands: max abs difference {worst}");
        }
    }
}
