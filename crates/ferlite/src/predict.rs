//! From 48x48 faces to emotions: the [`Predictor`] wraps a trained network, batches faces, and
//! optionally averages test-time-augmented views. Face detection (full photos) feeds it crops.

use crate::data::augment::fixed_view;
use crate::eval::metrics::argmax_rows;
use crate::emotion::{normalize_pixels, EMOTIONS, FACE_PIXELS, FACE_SIZE, NUM_CLASSES};
use crate::infer::FastNetwork;
use crate::model::Network;
use crate::nn::loss::softmax_rows;
use crate::nn::Precision;
use crate::nn::Tensor;
use crate::weights::{TensorFile, VAL_ACCURACY_KEY};
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;
use std::sync::OnceLock;

/// The trained model compiled into the binary (provenance and val report: `models/fer2013/README.md`).
pub const EMBEDDED_MODEL: Option<&[u8]> = Some(include_bytes!("../../../models/fer2013/model.safetensors"));

/// Test-time augmentation: average the probabilities of several views of each face.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Tta {
    /// One view: the face as given (the fastest).
    None,
    /// Two views: the face and its mirror image. The default: on the embedded model +0.7 points
    /// on val/ over one view for twice the network time.
    #[default]
    Flip,
    /// Ten views: centre and four corner shifts by 2 px, each also mirrored, for five times the
    /// network time of flip (models/fer2013/README.md has what it gives on val/).
    TenCrop,
}

/// One test-time view of a face: mirrored or not, shifted by (`dx`, `dy`) pixels.
#[derive(Clone, Copy, PartialEq)]
struct View {
    mirror: bool,
    dx: f32,
    dy: f32,
}

const fn view(mirror: bool, dx: f32, dy: f32) -> View {
    View { mirror, dx, dy }
}

impl Tta {
    fn views(self) -> &'static [View] {
        const SHIFTS: [View; 10] = [
            view(false, 0.0, 0.0), view(true, 0.0, 0.0),
            view(false, -2.0, -2.0), view(true, -2.0, -2.0), view(false, 2.0, -2.0), view(true, 2.0, -2.0),
            view(false, -2.0, 2.0), view(true, -2.0, 2.0), view(false, 2.0, 2.0), view(true, 2.0, 2.0),
        ];
        match self {
            Tta::None => &SHIFTS[..1],
            Tta::Flip => &SHIFTS[..2],
            Tta::TenCrop => &SHIFTS,
        }
    }
}

/// One face's result.
#[derive(Clone, Debug, Serialize)]
pub struct Prediction {
    pub emotion: &'static str,
    pub class_index: usize,
    pub confidence: f32,
    /// Probability per class, in [`EMOTIONS`] order (in JSON: an object keyed by emotion name).
    #[serde(serialize_with = "probabilities_by_name")]
    pub probabilities: [f32; NUM_CLASSES],
}

fn probabilities_by_name<S: serde::Serializer>(probabilities: &[f32; NUM_CLASSES], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(EMOTIONS.iter().zip(probabilities))
}

impl Prediction {
    pub fn from_probabilities(probabilities: [f32; NUM_CLASSES]) -> Self {
        let class_index = argmax_rows(&probabilities, NUM_CLASSES)[0];
        Prediction { emotion: EMOTIONS[class_index], class_index, confidence: probabilities[class_index], probabilities }
    }
}

pub struct Predictor {
    pub network: Network,
    /// The same weights on the inference fast path, which does the work. Folded on first use: on a
    /// photo the face detector's working memory is then freed before these ~10 MB exist (issue
    /// #5's 50 MB for `predict`), and an image without faces never needs them.
    fast: OnceLock<FastNetwork>,
    /// Where the weights came from: their path, or `embedded`.
    pub source: String,
    /// Validation accuracy recorded in the weights file by `train`, if any.
    pub val_accuracy: Option<f64>,
    /// Faces per forward pass.
    pub batch_size: usize,
    /// The fast path's products (set with [`with_precision`](Self::with_precision)).
    precision: Precision,
}

impl Predictor {
    pub fn new(network: Network) -> Self {
        Predictor { fast: OnceLock::new(), network, source: "in memory".into(), val_accuracy: None, batch_size: 256, precision: Precision::F32 }
    }

    /// The same predictor with the fast path's Winograd products in `precision`; an error when
    /// this CPU lacks it ([`Precision::Bf16`] needs AVX-512 BF16).
    pub fn with_precision(mut self, precision: Precision) -> Result<Self> {
        // Checked now rather than when the network is first folded.
        precision.check()?;
        if precision == Precision::Int8 && self.network.int8_ranges.is_none() {
            return Err(crate::int8::missing_ranges().context(self.source.clone()));
        }
        self.precision = precision;
        self.fast = OnceLock::new();
        Ok(self)
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The network on the inference fast path.
    pub fn fast(&self) -> &FastNetwork {
        self.fast.get_or_init(|| self.network.fold().with_precision(self.precision).expect("precision checked by with_precision"))
    }

    /// The model at `path`, or the embedded one when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let (file, source) = match (path, EMBEDDED_MODEL) {
            (Some(p), _) => (TensorFile::read(p)?, p.display().to_string()),
            (None, Some(bytes)) => (TensorFile::from_bytes(bytes).context("embedded model is unreadable")?, "embedded".to_string()),
            (None, None) => anyhow::bail!("this build has no embedded model yet: pass --model <weights.safetensors> (e.g. runs/paper/best.safetensors from `ferlite train`)"),
        };
        let network = Network::from_tensor_file(&file).with_context(|| format!("{source}: not a usable ferlite model"))?;
        let val_accuracy = file.metadata.get(VAL_ACCURACY_KEY).and_then(|v| v.parse().ok());
        Ok(Predictor { source, val_accuracy, ..Predictor::new(network) })
    }

    /// Class probabilities for `faces` (48x48 gray pixels, face after face), `n * 7` values.
    pub fn probabilities(&self, faces: &[u8], tta: Tta) -> Vec<f32> {
        assert_eq!(faces.len() % FACE_PIXELS, 0, "faces must be whole 48x48 images");
        let n = faces.len() / FACE_PIXELS;
        let views = tta.views();
        let mut sums = vec![0.0f32; n * NUM_CLASSES];
        for (chunk_index, chunk) in faces.chunks(self.batch_size * FACE_PIXELS).enumerate() {
            let m = chunk.len() / FACE_PIXELS;
            for &View { mirror, dx, dy } in views {
                let mut input = Tensor::zeros([m, 1, FACE_SIZE, FACE_SIZE]);
                for (out, face) in input.data.chunks_mut(FACE_PIXELS).zip(chunk.chunks(FACE_PIXELS)) {
                    if (mirror, dx, dy) == (false, 0.0, 0.0) {
                        normalize_pixels(face, out);
                    } else {
                        fixed_view(face, mirror, dx, dy, out);
                    }
                }
                let probs = softmax_rows(&self.fast().forward(&input).data, NUM_CLASSES);
                let start = chunk_index * self.batch_size * NUM_CLASSES;
                sums[start..start + probs.len()].iter_mut().zip(&probs).for_each(|(s, p)| *s += p);
            }
        }
        let k = views.len() as f32;
        sums.iter_mut().for_each(|s| *s /= k);
        sums
    }

    /// One [`Prediction`] per face.
    pub fn predict(&self, faces: &[u8], tta: Tta) -> Vec<Prediction> {
        self.predict_averaged(faces, 1, tta)
    }

    /// One [`Prediction`] per run of `crops_per_face` consecutive crops (several crops of one
    /// face, e.g. at different framings), their probabilities averaged.
    pub fn predict_averaged(&self, crops: &[u8], crops_per_face: usize, tta: Tta) -> Vec<Prediction> {
        assert_eq!(crops.len() % (crops_per_face * FACE_PIXELS), 0, "crops must come in whole runs of {crops_per_face} per face");
        let k = crops_per_face as f32;
        self.probabilities(crops, tta)
            .chunks(crops_per_face * NUM_CLASSES)
            .map(|face| {
                let mut mean = [0.0f32; NUM_CLASSES];
                face.chunks(NUM_CLASSES).for_each(|p| mean.iter_mut().zip(p).for_each(|(m, v)| *m += v / k));
                Prediction::from_probabilities(mean)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--tta flip` is the mean of the face's and its mirror image's probabilities (faces in
    /// batches of 2, so a batch boundary falls inside the faces).
    #[test]
    fn flip_averages_the_face_and_its_mirror_image() {
        let mut predictor = Predictor::load(None).unwrap();
        predictor.batch_size = 2;
        let faces: Vec<u8> = (0..3 * FACE_PIXELS).map(|i| ((i * 7919 + i / FACE_SIZE * 31) % 251) as u8).collect();
        let mirrored: Vec<u8> = faces.chunks(FACE_SIZE).flat_map(|row| row.iter().rev().copied()).collect();
        let (plain, mirror) = (predictor.probabilities(&faces, Tta::None), predictor.probabilities(&mirrored, Tta::None));
        let expected: Vec<f32> = plain.iter().zip(&mirror).map(|(a, b)| (a + b) / 2.0).collect();
        let flip = predictor.probabilities(&faces, Tta::Flip);
        let largest_gap = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(largest_gap(&flip, &expected) < 1e-5, "{flip:?} vs {expected:?}");
        assert!(largest_gap(&flip, &plain) > 1e-4, "the mirror image must change something");
        assert_eq!(predictor.probabilities(&faces, Tta::TenCrop).len(), 3 * NUM_CLASSES);
    }
}
