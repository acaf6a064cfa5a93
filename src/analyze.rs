//! From a whole image to emotions per face: find the faces (or take the image as one face), crop
//! each like FER2013, and classify the crops in one batch. `predict`, `serve` and the GIF/frame
//! readers all go through [`analyze`], so a photo gives the same answer whichever way it arrives.

use crate::faces::{crop_face, Detector, FaceBox};
use crate::image_io::face_pixels;
use crate::predict::{Prediction, Predictor, Tta};
use anyhow::Result;
use image::DynamicImage;
use serde::{Deserialize, Serialize};

/// How to find faces in an input image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum FaceMode {
    /// Images up to 96 px on both sides are taken as one face crop; larger ones go through the detector.
    #[default]
    Auto,
    /// Always run the face detector.
    Detect,
    /// The whole image is one face (already cropped, like FER2013).
    Whole,
}

/// Largest side of an image taken as a face crop in [`FaceMode::Auto`].
pub const CROP_MAX_SIDE: u32 = 96;

/// One face: where it is and what it shows.
#[derive(Clone, Debug, Serialize)]
pub struct FaceResult {
    #[serde(rename = "box")]
    pub face_box: FaceBox,
    #[serde(flatten)]
    pub prediction: Prediction,
}

/// Every face in `photo` (largest first) with its emotion. An empty list means no face was found.
pub fn analyze(predictor: &Predictor, photo: &DynamicImage, mode: FaceMode, detector: Detector, tta: Tta) -> Result<Vec<FaceResult>> {
    let whole = match mode {
        FaceMode::Whole => true,
        FaceMode::Detect => false,
        FaceMode::Auto => photo.width() <= CROP_MAX_SIDE && photo.height() <= CROP_MAX_SIDE,
    };
    let (boxes, crops) = if whole {
        (vec![FaceBox::whole(photo.width(), photo.height())], face_pixels(photo))
    } else {
        let boxes = detector.detect(photo)?;
        let gray = photo.to_luma8();
        let crops: Vec<u8> = boxes.iter().flat_map(|b| crop_face(&gray, b, b.crop_margin())).collect();
        (boxes, crops)
    };
    let predictions = predictor.predict(&crops, tta);
    Ok(boxes.into_iter().zip(predictions).map(|(face_box, prediction)| FaceResult { face_box, prediction }).collect())
}
