//! From a whole image to emotions per face: find the faces (or take the image as one face), crop
//! each like FER2013, and classify the crops in one batch. `predict`, `serve` and the GIF/frame
//! readers all go through [`analyze`], so a photo gives the same answer whichever way it arrives.

use crate::faces::{framed_crops_of_faces, Detector, FaceBox, FRAMING_SCALES};
use crate::emotion::pixel_mean_std;
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

/// The emotion of each detected face in `photo`: the face classified at every framing of
/// [`FRAMING_SCALES`] (all faces in one batch), the probabilities averaged.
pub fn classify_detected(predictor: &Predictor, photo: &DynamicImage, faces: &[FaceBox], tta: Tta) -> Vec<Prediction> {
    let crops = framed_crops_of_faces(photo, faces);
    predictor.predict_averaged(&crops, FRAMING_SCALES.len(), tta)
}
