//! From a whole image to emotions per face: find the faces (or take the image as one face), crop
//! each like FER2013, and classify the crops in one batch. `predict`, `serve` and the GIF/frame
//! readers all go through [`analyze`], so a photo gives the same answer whichever way it arrives.

use crate::faces::{framed_crops_of_faces, Detector, FaceBox, FRAMING_SCALES};
use crate::emotion::{pixel_mean_std, FACE_PIXELS, NUM_CLASSES};
use crate::image_io::face_pixels;
use crate::predict::{Prediction, Predictor, Tta};
use anyhow::Result;
use image::DynamicImage;
use serde::{Deserialize, Serialize};

/// How to find faces in an input image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum FaceMode {
    /// Images of 8 to 96 px on both sides are taken as one face crop; larger ones go through the
    /// detector, and smaller or blank (one grey) ones hold no face.
    #[default]
    Auto,
    /// Always run the face detector.
    Detect,
    /// The whole image is one face (already cropped, like FER2013).
    Whole,
}

/// Largest side of an image taken as a face crop in [`FaceMode::Auto`].
pub const CROP_MAX_SIDE: u32 = 96;

/// Smallest side of an image classified as a face. FER2013's val faces shrunk to 8 px and enlarged
/// again still score 43% (chance is 25%; 12 px: 56%, 48 px: 60%); a 1x1 or 5x200 image is no face.
pub const MIN_FACE_SIDE: u32 = 8;

/// Grey-level standard deviation (0-255) at or under which a crop-sized image is blank, not a face
/// (FER2013's faces average 39-54; a single-colour image has 0).
pub const BLANK_MAX_STD: f32 = 1.0;

fn is_blank(photo: &DynamicImage) -> bool {
    pixel_mean_std(&photo.to_luma8()).1 * 255.0 <= BLANK_MAX_STD
}

/// An image given as one face (`--faces whole`) that cannot be one.
#[derive(Debug, thiserror::Error)]
#[error("image is {width}x{height} px, too small for a face (a face needs at least {MIN_FACE_SIDE} px on each side)")]
pub struct FaceTooSmall {
    pub width: u32,
    pub height: u32,
}

/// One face: where it is and what it shows.
#[derive(Clone, Debug, Serialize)]
pub struct FaceResult {
    #[serde(rename = "box")]
    pub face_box: FaceBox,
    #[serde(flatten)]
    pub prediction: Prediction,
    /// The same face's id across the frames of a video or camera stream ([`crate::track`]);
    /// `None` for a still image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
}

/// How to find the faces in an image (`predict --faces --detector --min-face-score`, and the
/// service's query of the same names).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaceSearch {
    pub mode: FaceMode,
    pub detector: Detector,
    /// Lowest confidence (0-1) of a face kept (`None`: each detector's own threshold).
    pub min_face_score: Option<f32>,
}

/// Every face in `photo` (largest first) with its emotion. An empty list means no face was found.
pub fn analyze(predictor: &Predictor, photo: &DynamicImage, search: FaceSearch, tta: Tta) -> Result<Vec<FaceResult>> {
    let (width, height) = (photo.width(), photo.height());
    let face_sized = width.min(height) >= MIN_FACE_SIDE;
    let whole = match search.mode {
        FaceMode::Whole if !face_sized => return Err(FaceTooSmall { width, height }.into()),
        FaceMode::Whole => true,
        FaceMode::Detect => false,
        FaceMode::Auto => face_sized && width.max(height) <= CROP_MAX_SIDE && !is_blank(photo),
    };
    let (boxes, predictions) = if whole {
        (vec![FaceBox::whole(photo.width(), photo.height())], predictor.predict(&face_pixels(photo), tta))
    } else {
        // The detector's products in the classifier's precision: one choice for the whole photo.
        let boxes = search.detector.detect_with(photo, search.min_face_score, predictor.precision())?;
        let predictions = classify_detected(predictor, photo, &boxes, tta);
        (boxes, predictions)
    };
    Ok(boxes.into_iter().zip(predictions).map(|(face_box, prediction)| FaceResult { face_box, prediction, track_id: None }).collect())
}

/// Faces the network labels with at least this probability at the detector's own framing
/// (`FRAMING_SCALES[1]`, with the TTA's views) keep that answer; the others are classified at the
/// other framings too, the three averaged. On val/ faces found in grid photos, upright and tilted
/// within ±20° (`examples/framing_cascade.rs`, docs/experiments.md 2026-12-08): with the mirror
/// (the default) 99.97-100% of the labels are the ones all three framings give, at 3.4 network
/// passes a face instead of 6; without it 99.9%, at 1.65 instead of 3; accuracy within 0.03 points.
pub const OTHER_FRAMINGS_BELOW: f32 = 0.6;

/// Index in [`FRAMING_SCALES`] of the detector's own framing (scale 1).
const OWN_FRAMING: usize = 1;

/// The emotion of each detected face in `photo`: every face classified at its detector's own
/// framing (all faces in one batch), and the faces scoring under [`OTHER_FRAMINGS_BELOW`] at the
/// other framings of [`FRAMING_SCALES`] as well (a second batch), their probabilities averaged.
pub fn classify_detected(predictor: &Predictor, photo: &DynamicImage, faces: &[FaceBox], tta: Tta) -> Vec<Prediction> {
    debug_assert_eq!(FRAMING_SCALES[OWN_FRAMING], 1.0);
    let crops = framed_crops_of_faces(photo, faces);
    let per_face = FRAMING_SCALES.len() * FACE_PIXELS;
    let framings = |face: usize| crops[face * per_face..][..per_face].chunks(FACE_PIXELS).enumerate();
    let own: Vec<u8> = (0..faces.len()).flat_map(|f| framings(f).filter(|(k, _)| *k == OWN_FRAMING).flat_map(|(_, c)| c)).copied().collect();
    let mut probabilities = predictor.probabilities(&own, tta);
    let unsure: Vec<usize> = (0..faces.len()).filter(|f| probabilities[f * NUM_CLASSES..][..NUM_CLASSES].iter().all(|&p| p < OTHER_FRAMINGS_BELOW)).collect();
    let others: Vec<u8> = unsure.iter().flat_map(|&f| framings(f).filter(|(k, _)| *k != OWN_FRAMING).flat_map(|(_, c)| c)).copied().collect();
    let more = predictor.probabilities(&others, tta);
    let per_unsure = (FRAMING_SCALES.len() - 1) * NUM_CLASSES;
    for (&f, extra) in unsure.iter().zip(more.chunks(per_unsure)) {
        let face = &mut probabilities[f * NUM_CLASSES..][..NUM_CLASSES];
        for (c, p) in face.iter_mut().enumerate() {
            *p = (*p + extra.iter().skip(c).step_by(NUM_CLASSES).sum::<f32>()) / FRAMING_SCALES.len() as f32;
        }
    }
    probabilities.chunks(NUM_CLASSES).map(|p| Prediction::from_probabilities(p.try_into().expect("seven probabilities"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Network, NetworkConfig};

    /// A face the model is sure of at its detector's own framing keeps that framing's answer; a
    /// face it is unsure of gets the mean of all three framings, as before there was a choice.
    #[test]
    fn only_faces_the_model_is_unsure_of_are_classified_at_the_other_framings() {
        let photo = image::open(concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/demo/astronaut.jpg")).unwrap();
        let faces = Detector::Yunet.detect(&photo).unwrap();
        assert_eq!(faces.len(), 1);
        let crops = framed_crops_of_faces(&photo, &faces);
        let own = &crops[OWN_FRAMING * FACE_PIXELS..][..FACE_PIXELS];
        let largest_gap = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        for tta in [Tta::None, Tta::Flip] {
            // The embedded model is sure of the astronaut's smile.
            let sure = Predictor::load(None).unwrap();
            let at_own = sure.probabilities(own, tta);
            assert!(at_own.iter().any(|&p| p >= OTHER_FRAMINGS_BELOW), "{at_own:?}");
            let got = classify_detected(&sure, &photo, &faces, tta);
            assert!(largest_gap(&got[0].probabilities, &at_own) < 1e-6, "{tta:?}: {:?} vs {at_own:?}", got[0].probabilities);
            // Untrained weights are unsure of every face.
            let unsure = Predictor::new(Network::new(NetworkConfig::paper(), 0));
            assert!(unsure.probabilities(own, tta).iter().all(|&p| p < OTHER_FRAMINGS_BELOW));
            let all_three = unsure.predict_averaged(&crops, FRAMING_SCALES.len(), tta);
            let got = classify_detected(&unsure, &photo, &faces, tta);
            assert!(largest_gap(&got[0].probabilities, &all_three[0].probabilities) < 1e-6, "{tta:?}: {:?} vs {:?}", got[0].probabilities, all_three[0].probabilities);
            assert!(largest_gap(&all_three[0].probabilities, &unsure.probabilities(own, tta)) > 1e-6, "the other framings must change something");
        }
    }
}
