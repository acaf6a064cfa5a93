//! dlib's CNN face detector (MMOD, `mmod_human_face_detector.dat`, CC0; see `assets/README.md`),
//! re-implemented: five 5x5 convolutions, each with an affine (folded batch-norm) and ReLU, three
//! of them at stride 2, then a 9x9 convolution whose one output channel scores an 80x80 window
//! per position; run over an image pyramid (each level 5/6 of the last) so that larger faces fit
//! the window at a smaller level. It finds turned and tightly cropped faces that the SSD scores
//! low (decision 12), at faces of 80 px and up in the image it is given.
//!
//! The weights are read from dlib's own serialisation of the network, compiled in byte for byte.

use super::ssd::iou;
use super::FaceBox;
use crate::nn::direct_conv::{DirectConv, DirectConv3x3};
use crate::nn::gemm::{row_major, sgemm};
use anyhow::{ensure, Context, Result};
use image::RgbImage;
use rayon::prelude::*;

const MODEL: &[u8] = include_bytes!("../../../../assets/dlib/mmod_human_face_detector.dat");

/// Photos are shrunk to at most this side before detection (bounded time; boxes map back).
pub const DETECTION_MAX_SIDE: u32 = 1280;

/// Each pyramid level is this fraction of the previous one (dlib's `pyramid_down<6>`).
const LEVEL_SCALE: f32 = 5.0 / 6.0;

/// Black border around each pyramid level, as dlib's tiled pyramid leaves around each tile, so
/// that windows reaching over the photo's edge see what they saw in training.
const BORDER: usize = 11;

/// Positions per block of a convolution's im2col rows: bounded memory, many blocks for threads.
const BLOCK_POSITIONS: usize = 2048;

/// A convolution with its affine folded in; weights `[(ky * k + kx) * inputs + c][output]`, the
/// matrix an HWC im2col row multiplies.
struct Conv {
    kernel: usize,
    stride: usize,
    padding: usize,
    inputs: usize,
    outputs: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    relu: bool,
    /// The same convolution for a direct AVX2 kernel, when the CPU has it: no im2col copy and no
    /// GEMM packing, which took half the time.
    direct: Option<Direct>,
}

/// How a convolution runs on the direct kernels (outputs padded to a multiple of 16).
enum Direct {
    /// 5x5, stride 1, padding 2: as it is.
    Same5(DirectConv<5>),
    /// 5x5, stride 2, no padding: as a 3x3 stride-1 convolution over the input's four 2x2 phases
    /// (space to depth; the kernel zero-padded to 6x6), whose output inside its 1-px border is
    /// the strided one. 1.44x the multiply-adds at the direct kernel's speed.
    Phases(DirectConv3x3),
}

/// An activation map, height x width x channels (channels fastest).
struct Map {
    height: usize,
    width: usize,
    channels: usize,
    data: Vec<f32>,
}

impl Conv {
    fn forward(&self, x: &Map) -> Map {
        debug_assert_eq!(x.channels, self.inputs);
        if let Some(direct) = &self.direct {
            return self.forward_direct(direct, x);
        }
        if self.outputs == 1 {
            return self.forward_one_output(x);
        }
        let c = self.inputs;
        let (height, width) = self.output_size(x);
        let patch = self.kernel * self.kernel * c;
        let mut data = vec![0.0f32; height * width * self.outputs];
        data.par_chunks_mut(BLOCK_POSITIONS * self.outputs).enumerate().for_each(|(block, out)| {
            let first = block * BLOCK_POSITIONS;
            let positions = out.len() / self.outputs;
            let mut cols = vec![0.0f32; positions * patch];
            for (i, row) in cols.chunks_mut(patch).enumerate() {
                for (tap, at) in self.taps(x, (first + i) / width, (first + i) % width) {
                    row[tap * c..][..c].copy_from_slice(&x.data[at..at + c]);
                }
            }
            sgemm(positions, patch, self.outputs, &cols, row_major(patch), &self.weights, row_major(self.outputs), 0.0, out, row_major(self.outputs));
            for pixel in out.chunks_mut(self.outputs) {
                pixel.iter_mut().enumerate().for_each(|(o, v)| *v = self.activate(o, *v));
            }
        });
        Map { height, width, channels: self.outputs, data }
    }

    /// The taps of output position (`oy`, `ox`)'s window that fall inside `x`: the tap's index
    /// (`ky * kernel + kx`) and where its `inputs` values start in `x.data`.
    fn taps<'a>(&'a self, x: &'a Map, oy: usize, ox: usize) -> impl Iterator<Item = (usize, usize)> + 'a {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let inside = move |o: usize, t: usize, side: usize| (o * s + t).checked_sub(p).filter(|&i| i < side);
        (0..k).filter_map(move |ky| inside(oy, ky, x.height).map(|iy| (ky, iy))).flat_map(move |(ky, iy)| {
            (0..k).filter_map(move |kx| inside(ox, kx, x.width).map(|ix| (ky * k + kx, (iy * x.width + ix) * self.inputs)))
        })
    }

    /// Output `o`'s value from its sum of products: plus the bias, then the ReLU if any.
    fn activate(&self, o: usize, sum: f32) -> f32 {
        let value = sum + self.bias[o];
        if self.relu { value.max(0.0) } else { value }
    }

    /// Output height and width on `x` (none when the window does not fit).
    fn output_size(&self, x: &Map) -> (usize, usize) {
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let out_side = |side: usize| (side + 2 * p).saturating_sub(k) / s + 1;
        if x.height + 2 * p < k || x.width + 2 * p < k { (0, 0) } else { (out_side(x.height), out_side(x.width)) }
    }

    /// [`Conv::forward`] for the one-channel scorer: a dot product per tap read in place (im2col
    /// rows of 9x9x45 values, packed again by the GEMM for one output, cost 20% of the detector).
    fn forward_one_output(&self, x: &Map) -> Map {
        let c = self.inputs;
        let (height, width) = self.output_size(x);
        let mut data = vec![0.0f32; height * width];
        data.par_chunks_mut(width.max(1)).enumerate().for_each(|(oy, row)| {
            for (ox, out) in row.iter_mut().enumerate() {
                // Eight running sums, so that the compiler keeps them in one vector register.
                let mut sums = [0.0f32; 8];
                for (tap, at) in self.taps(x, oy, ox) {
                    for (i, (a, b)) in x.data[at..at + c].iter().zip(&self.weights[tap * c..][..c]).enumerate() {
                        sums[i % 8] += a * b;
                    }
                }
                *out = self.activate(0, sums.iter().sum::<f32>());
            }
        });
        Map { height, width, channels: 1, data }
    }

    /// [`Conv::forward`] by a direct kernel, which works on planes: the map is turned into planes
    /// (or phase planes) and back.
    fn forward_direct(&self, direct: &Direct, x: &Map) -> Map {
        let c = self.inputs;
        // The planes the kernel reads, their size, and where the output sits in its result.
        let (planes, (h, w), border) = match direct {
            Direct::Same5(_) => {
                let hw = x.height * x.width;
                let mut planes = vec![0.0f32; c * hw];
                for (p, pixel) in x.data.chunks_exact(c).enumerate() {
                    pixel.iter().enumerate().for_each(|(ci, &v)| planes[ci * hw + p] = v);
                }
                (planes, (x.height, x.width), 0)
            }
            Direct::Phases(_) => {
                let (h, w) = (x.height.div_ceil(2), x.width.div_ceil(2));
                let mut planes = vec![0.0f32; 4 * c * h * w];
                for (p, pixel) in x.data.chunks_exact(c).enumerate() {
                    let (y, xx) = (p / x.width, p % x.width);
                    let phase = (y % 2) * 2 + xx % 2;
                    let at = (y / 2) * w + xx / 2;
                    pixel.iter().enumerate().for_each(|(ci, &v)| planes[(phase * c + ci) * h * w + at] = v);
                }
                (planes, (h, w), 1)
            }
        };
        let (out_h, out_w) = (h.saturating_sub(2 * border), w.saturating_sub(2 * border));
        if out_h == 0 || out_w == 0 {
            return Map { height: 0, width: 0, channels: self.outputs, data: Vec::new() };
        }
        let hw = h * w;
        let block = DirectConv3x3::CHANNEL_BLOCK;
        let mut out = vec![0.0f32; self.outputs.next_multiple_of(block) * hw];
        match direct {
            Direct::Same5(conv) => run_in_blocks(conv, &planes, (h, w), &mut out),
            Direct::Phases(conv) => run_in_blocks(conv, &planes, (h, w), &mut out),
        }
        let mut data = vec![0.0f32; out_h * out_w * self.outputs];
        for (p, pixel) in data.chunks_exact_mut(self.outputs).enumerate() {
            let at = (p / out_w + border) * w + p % out_w + border;
            pixel.iter_mut().enumerate().for_each(|(o, v)| *v = self.activate(o, out[o * hw + at]));
        }
        Map { height: out_h, width: out_w, channels: self.outputs, data }
    }

    /// Prepares a direct kernel for a 5x5 convolution of stride 1 (padding 2) or 2 (padding 0),
    /// the weights as folded.
    fn with_direct_kernel(mut self) -> Self {
        let padded_outputs = self.outputs.next_multiple_of(DirectConv3x3::CHANNEL_BLOCK);
        // The folded weight of output o, input c, tap (ky, kx).
        let weight = |o: usize, c: usize, ky: usize, kx: usize| self.weights[((ky * 5 + kx) * self.inputs + c) * self.outputs + o];
        self.direct = match (self.kernel, self.stride, self.padding) {
            (5, 1, 2) => {
                let mut oihw = vec![0.0f32; padded_outputs * self.inputs * 25];
                for (o, c, ky, kx) in (0..self.outputs).flat_map(|o| (0..self.inputs).flat_map(move |c| (0..25).map(move |t| (o, c, t / 5, t % 5)))) {
                    oihw[((o * self.inputs + c) * 5 + ky) * 5 + kx] = weight(o, c, ky, kx);
                }
                DirectConv::<5>::new(&oihw, self.inputs, padded_outputs).map(Direct::Same5)
            }
            (5, 2, 0) => {
                // Phase (py, px) of input c is channel (py * 2 + px) * inputs + c; its tap (ky, kx)
                // is the original's (2ky + py, 2kx + px), zero past the 5x5.
                let phased = 4 * self.inputs;
                let mut oihw = vec![0.0f32; padded_outputs * phased * 9];
                for (o, c, py, px) in (0..self.outputs).flat_map(|o| (0..self.inputs).flat_map(move |c| (0..4).map(move |p| (o, c, p / 2, p % 2)))) {
                    for (ky, kx) in (0..3).flat_map(|ky| (0..3).map(move |kx| (ky, kx))) {
                        let (oy, ox) = (2 * ky + py, 2 * kx + px);
                        if oy < 5 && ox < 5 {
                            oihw[((o * phased + (py * 2 + px) * self.inputs + c) * 3 + ky) * 3 + kx] = weight(o, c, oy, ox);
                        }
                    }
                }
                DirectConv3x3::new(&oihw, phased, padded_outputs).map(Direct::Phases)
            }
            _ => None,
        };
        self
    }

    /// The input position (row or column) at the centre of output position `out`'s window.
    fn input_centre(&self, out: f32) -> f32 {
        out * self.stride as f32 - self.padding as f32 + (self.kernel / 2) as f32
    }
}

/// Reads dlib's serialisation (`dlib/serialize.h`): integers as a length byte (0x80 set when
/// negative) and that many little-endian bytes; reals as an integer mantissa and exponent;
/// strings length-prefixed; tensors as a version, four dimensions and raw little-endian floats.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn int(&mut self) -> Result<i64> {
        let head = *self.bytes.get(self.at).context("truncated integer")?;
        let len = (head & 0x0f) as usize;
        ensure!(len <= 8, "integer of {len} bytes");
        let digits = self.bytes.get(self.at + 1..self.at + 1 + len).context("truncated integer")?;
        self.at += 1 + len;
        let magnitude = digits.iter().rev().fold(0u64, |v, &b| (v << 8) | b as u64) as i64;
        Ok(if head & 0x80 != 0 { -magnitude } else { magnitude })
    }

    fn real(&mut self) -> Result<f64> {
        let (mantissa, exponent) = (self.int()?, self.int()?);
        ensure!(exponent.abs() < 2000, "special real (exponent {exponent})");
        Ok(mantissa as f64 * 2f64.powi(exponent as i32))
    }

    fn tensor(&mut self) -> Result<Vec<f32>> {
        ensure!(self.int()? == 2, "tensor version");
        let mut size = 1usize;
        for _ in 0..4 {
            size = size.checked_mul(usize::try_from(self.int()?)?).context("tensor size")?;
        }
        let end = size.checked_mul(4).and_then(|n| n.checked_add(self.at)).context("tensor size")?;
        let raw = self.bytes.get(self.at..end).context("truncated tensor")?;
        self.at = end;
        Ok(raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
    }

    /// Moves past the next occurrence of the length-prefixed string `token`.
    fn skip_to(&mut self, token: &str) -> Result<()> {
        let needle: Vec<u8> = [1, token.len() as u8].into_iter().chain(token.bytes()).collect();
        let found = self.bytes[self.at..].windows(needle.len()).position(|w| w == needle).with_context(|| format!("no {token} layer"))?;
        self.at += found + needle.len();
        Ok(())
    }
}

/// Raw score to a 0-1 confidence: fitted on 2026-12-07 on 1,111 boxes scoring above -1 (1,053
/// faces; 58 not): a box at dlib's threshold, 0, is a face at 0.83, at 1.0 at 0.98
/// (`cargo run --release --example detector_calibration -- ../shared/data/fer2013`).
pub const CALIBRATION: super::ScoreCalibration = super::ScoreCalibration { slope: 2.3447, offset: 1.6086 };

/// The detector: the network, the input's channel means and the window and overlap rule of its
/// MMOD loss layer.
pub struct MmodDetector {
    convs: Vec<Conv>,
    channel_means: [f32; 3],
    window: (f32, f32),
    /// Two detections are the same face when their intersection over union exceeds this.
    nms_iou: f32,
}

impl MmodDetector {
    pub fn new() -> Result<Self> {
        Self::from_bytes(MODEL).context("reading the embedded dlib MMOD face detector")
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, at: 0 };
        r.skip_to("loss_mmod_")?;
        ensure!(r.int()? == 1, "mmod_options version");
        let window = (r.int()? as f32, r.int()? as f32);
        let _loss_per_false_alarm = r.real()?;
        let _loss_per_missed_target = r.real()?;
        let _truth_match_iou = r.real()?;
        let nms_iou = r.real()? as f32;
        let nms_covered = r.real()?;
        ensure!(nms_covered >= 1.0, "overlap rule by coverage ({nms_covered}) not supported");
        r.skip_to("input_rgb_image_pyramid")?;
        let channel_means = [r.real()? as f32, r.real()? as f32, r.real()? as f32];
        // Layers follow from the input up: convolutions, each but the last with an affine and a ReLU.
        let mut convs = Vec::new();
        let mut inputs = 3;
        while r.skip_to("con_4").is_ok() {
            let params = r.tensor()?;
            let outputs = usize::try_from(r.int()?)?;
            let (kernel, kernel_x) = (usize::try_from(r.int()?)?, usize::try_from(r.int()?)?);
            let (stride, stride_x) = (usize::try_from(r.int()?)?, usize::try_from(r.int()?)?);
            let (padding, padding_x) = (usize::try_from(r.int()?)?, usize::try_from(r.int()?)?);
            ensure!(kernel == kernel_x && stride == stride_x && padding == padding_x, "non-square convolution");
            let patch = inputs * kernel * kernel;
            ensure!(params.len() == outputs * (patch + 1), "convolution {} has {} values, not {}", convs.len(), params.len(), outputs * (patch + 1));
            let (filters, bias) = params.split_at(outputs * patch);
            // dlib's [output][input][ky][kx] into [(ky, kx, input)][output].
            let mut weights = vec![0.0f32; patch * outputs];
            for o in 0..outputs {
                for c in 0..inputs {
                    for ky in 0..kernel {
                        for kx in 0..kernel {
                            weights[((ky * kernel + kx) * inputs + c) * outputs + o] = filters[((o * inputs + c) * kernel + ky) * kernel + kx];
                        }
                    }
                }
            }
            convs.push(Conv { kernel, stride, padding, inputs, outputs, weights, bias: bias.to_vec(), relu: false, direct: None });
            inputs = outputs;
        }
        ensure!(convs.len() >= 2 && inputs == 1, "expected convolutions ending in one score channel");
        // Fold each batch norm (stored as trained: scale, shift, running means and variances;
        // dlib turns it into an affine at load time the same way) into the convolution before it.
        let mut r = Reader { bytes, at: 0 };
        let hidden = convs.len() - 1;
        for conv in &mut convs[..hidden] {
            r.skip_to("bn_con2")?;
            let params = r.tensor()?;
            for _alias in 0..2 {
                ensure!(r.int()? == 1, "alias tensor version");
                (0..4).try_for_each(|_| r.int().map(drop))?;
            }
            let (_means, _inverse_deviations, running_means, running_variances) = (r.tensor()?, r.tensor()?, r.tensor()?, r.tensor()?);
            let (_updates, _window) = (r.int()?, r.int()?);
            (0..4).try_for_each(|_| r.real().map(drop))?;
            let epsilon = r.real()? as f32;
            let n = conv.outputs;
            ensure!(params.len() == 2 * n && running_means.len() == n && running_variances.len() == n, "batch norm of the wrong size after a {n}-channel convolution");
            let (gamma, beta) = params.split_at(n);
            let scale: Vec<f32> = gamma.iter().zip(&running_variances).map(|(g, v)| g / (v + epsilon).sqrt()).collect();
            for row in conv.weights.chunks_mut(n) {
                row.iter_mut().zip(&scale).for_each(|(w, s)| *w *= s);
            }
            for o in 0..n {
                conv.bias[o] = conv.bias[o] * scale[o] + beta[o] - scale[o] * running_means[o];
            }
            conv.relu = true;
        }
        ensure!(r.skip_to("bn_con2").is_err(), "more batch norms than convolutions before the last");
        let convs = convs.into_iter().map(Conv::with_direct_kernel).collect();
        Ok(MmodDetector { convs, channel_means, window, nms_iou })
    }

    /// Faces in `photo` scoring above `min_score` (dlib's detection threshold is 0), best first.
    pub fn detect(&self, photo: &RgbImage, min_score: f32) -> Vec<FaceBox> {
        let (w, h) = photo.dimensions();
        let scale = (DETECTION_MAX_SIDE as f32 / w.max(h) as f32).min(1.0);
        let shrunk;
        let photo = if scale < 1.0 {
            shrunk = image::imageops::resize(photo, ((w as f32 * scale).round() as u32).max(1), ((h as f32 * scale).round() as u32).max(1), image::imageops::FilterType::Triangle);
            &shrunk
        } else {
            photo
        };
        let (pw, ph) = photo.dimensions();
        // The pyramid, each level from the last (as dlib's is: a fraction of the cost of each from
        // the photo), down to levels half the window's side, where a face fills it only in part.
        let mut levels: Vec<(f32, std::borrow::Cow<RgbImage>)> = Vec::new();
        loop {
            let scale = levels.last().map_or(1.0, |l| l.0 * LEVEL_SCALE);
            let (lw, lh) = ((pw as f32 * scale).round() as u32, (ph as f32 * scale).round() as u32);
            if (lw.min(lh) as f32) < self.window.0.min(self.window.1) / 2.0 {
                break;
            }
            let level = match levels.last() {
                Some((_, last)) => std::borrow::Cow::Owned(image::imageops::resize(last.as_ref(), lw, lh, image::imageops::FilterType::Triangle)),
                None => std::borrow::Cow::Borrowed(photo),
            };
            levels.push((scale, level));
        }
        // Levels side by side on the threads (the small ones have too few positions to split).
        let mut candidates: Vec<(f32, [f32; 4])> = levels
            .par_iter()
            .flat_map_iter(|(level_scale, level)| {
                let scores = self.scores(level);
                let mut found = Vec::new();
                for (i, &score) in scores.data.iter().enumerate() {
                    if score > min_score {
                        let (cy, cx) = self.window_centre(i / scores.width, i % scores.width);
                        let (cx, cy) = ((cx - BORDER as f32) / level_scale, (cy - BORDER as f32) / level_scale);
                        let (half_w, half_h) = (self.window.0 / 2.0 / level_scale, self.window.1 / 2.0 / level_scale);
                        found.push((score, [cx - half_w, cy - half_h, cx + half_w, cy + half_h]));
                    }
                }
                found
            })
            .collect();
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut kept: Vec<(f32, [f32; 4])> = Vec::new();
        for c in candidates {
            if kept.iter().all(|k| iou(&k.1, &c.1) <= self.nms_iou) {
                kept.push(c);
            }
        }
        kept.into_iter()
            .filter_map(|(score, [x0, y0, x1, y1])| {
                let (x0, y0) = ((x0 / scale).max(0.0), (y0 / scale).max(0.0));
                let (x1, y1) = ((x1 / scale).min(w as f32), (y1 / scale).min(h as f32));
                (x1 - x0 >= 1.0 && y1 - y0 >= 1.0).then_some(FaceBox { x: x0 as u32, y: y0 as u32, width: (x1 - x0) as u32, height: (y1 - y0) as u32, score: Some(score as f64), detector: Some(super::Detector::Mmod), landmarks: None })
            })
            .collect()
    }

    /// The score map of one pyramid level, framed in black as dlib frames it.
    fn scores(&self, level: &RgbImage) -> Map {
        let (w, h) = (level.width() as usize + 2 * BORDER, level.height() as usize + 2 * BORDER);
        let black = self.channel_means.map(|m| -m / 256.0);
        let mut data: Vec<f32> = std::iter::repeat_n(black, w * h).flatten().collect();
        for (x, y, pixel) in level.enumerate_pixels() {
            let at = ((y as usize + BORDER) * w + x as usize + BORDER) * 3;
            for c in 0..3 {
                data[at + c] = (pixel[c] as f32 - self.channel_means[c]) / 256.0;
            }
        }
        self.convs.iter().fold(Map { height: h, width: w, channels: 3, data }, |x, conv| conv.forward(&x))
    }

    /// The input pixel (row, column) at the centre of score position (`row`, `col`)'s window.
    fn window_centre(&self, row: usize, col: usize) -> (f32, f32) {
        self.convs.iter().rev().fold((row as f32, col as f32), |(r, c), conv| (conv.input_centre(r), conv.input_centre(c)))
    }
}

/// All output channels of `conv` on `planes` `[inputs, h, w]` into `out`, a block of 16 channels
/// per task.
fn run_in_blocks<const K: usize>(conv: &DirectConv<K>, planes: &[f32], (h, w): (usize, usize), out: &mut [f32]) {
    let block = DirectConv::<K>::CHANNEL_BLOCK;
    let mut padded = Vec::new();
    conv.pad_input(planes, (h, w), &mut padded);
    out.par_chunks_mut(block * h * w).enumerate().for_each(|(i, out)| conv.run(&padded, (h, w), i * block..(i + 1) * block, out));
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_network_is_dlibs_face_detector() {
        let d = MmodDetector::new().unwrap();
        let shapes: Vec<(usize, usize, usize, usize, usize)> = d.convs.iter().map(|c| (c.inputs, c.outputs, c.kernel, c.stride, c.padding)).collect();
        // dnn_mmod_face_detection_ex.cpp: three 5x5 stride-2 downsamplers (16, 32, 32), three 5x5
        // of 45, a 9x9 scorer; dlib pads stride-1 convolutions by half the kernel, others not.
        assert_eq!(shapes, [(3, 16, 5, 2, 0), (16, 32, 5, 2, 0), (32, 32, 5, 2, 0), (32, 45, 5, 1, 2), (45, 45, 5, 1, 2), (45, 45, 5, 1, 2), (45, 1, 9, 1, 4)]);
        assert_eq!(d.window, (80.0, 80.0));
        assert!((d.channel_means[0] - 122.782).abs() < 1e-3 && (d.channel_means[2] - 104.298).abs() < 1e-3, "{:?}", d.channel_means);
        assert!(d.convs.iter().rev().skip(1).all(|c| c.relu) && !d.convs.last().unwrap().relu);
        // Score position 0's window centre: 2 + 2·(2 + 2·2) = 14 in the framed level.
        assert_eq!(d.window_centre(0, 0), (14.0, 14.0));
        assert_eq!(d.window_centre(1, 3), (22.0, 38.0));
    }

    /// dlib 20.0 itself (`dlib.cnn_face_detection_model_v1` on the same file, PyPI `dlib-bin`)
    /// gives the demo photo's face at x 168, y 69, 96x96, confidence 1.06. The pyramid levels are
    /// resampled differently here (a triangle filter, each level framed on its own rather than
    /// tiled), so the box may sit a few pixels off.
    #[test]
    fn finds_the_demo_face_where_dlib_finds_it() {
        let photo = image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/astronaut.jpg")).unwrap().to_rgb8();
        let faces = MmodDetector::new().unwrap().detect(&photo, 0.0);
        assert_eq!(faces.len(), 1, "{faces:?}");
        let f = faces[0];
        assert!(f.x.abs_diff(168) <= 4 && f.y.abs_diff(69) <= 10 && f.width.abs_diff(96) <= 4, "{f:?}");
        assert!((f.score.unwrap() - 1.06).abs() < 0.03, "{f:?}");
    }

    #[test]
    fn reading_a_cut_or_altered_model_is_an_error_not_a_panic() {
        for cut in [0, 10, 100, MODEL.len() / 2, MODEL.len() - 1000] {
            assert!(MmodDetector::from_bytes(&MODEL[..cut]).is_err(), "cut at {cut}");
        }
        let mut altered = MODEL.to_vec();
        let at = altered.windows(7).position(|w| w == b"\x01\x05con_4").unwrap() + 7;
        altered[at + 1] = 9; // the first convolution's parameter tensor claims another version
        assert!(MmodDetector::from_bytes(&altered).is_err());
    }

    #[test]
    fn small_and_blank_photos_give_no_face() {
        let d = MmodDetector::new().unwrap();
        for (w, h) in [(1, 1), (30, 200), (300, 200)] {
            assert!(d.detect(&RgbImage::new(w, h), 0.0).is_empty(), "{w}x{h}");
        }
    }

    #[test]
    fn the_direct_kernel_computes_what_im2col_does() {
        let d = MmodDetector::new().unwrap();
        if !crate::nn::direct_conv::available() {
            eprintln!("skipped: no AVX2/FMA here, the im2col path is the only one");
            return;
        }
        // Every convolution but the 9x9 scorer runs on a direct kernel.
        assert_eq!(d.convs.iter().map(|c| c.direct.is_some()).collect::<Vec<_>>(), [true, true, true, true, true, true, false]);
        for conv in d.convs.iter().filter(|c| c.direct.is_some()) {
            // Odd and even sides, for the stride-2 phases.
            for (height, width) in [(7, 13), (10, 8), (5, 6)] {
                let data: Vec<f32> = (0..height * width * conv.inputs).map(|i| (i * 37 % 101) as f32 / 50.0 - 1.0).collect();
                let x = Map { height, width, channels: conv.inputs, data };
                let im2col = Conv { direct: None, weights: conv.weights.clone(), bias: conv.bias.clone(), ..*conv };
                let (a, b) = (conv.forward(&x), im2col.forward(&x));
                assert_eq!((a.height, a.width, a.channels), (b.height, b.width, b.channels), "stride {}, {height}x{width}", conv.stride);
                for (p, q) in a.data.iter().zip(&b.data) {
                    assert!((p - q).abs() < 1e-4 * (1.0 + q.abs()), "stride {}: {p} vs {q}", conv.stride);
                }
            }
        }
    }

    #[test]
    fn the_same_on_one_thread_and_on_three() {
        let photo = image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/astronaut.jpg")).unwrap().to_rgb8();
        let d = MmodDetector::new().unwrap();
        let run = |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| d.scores(&photo).data);
        assert_eq!(run(1), run(3));
    }
}
