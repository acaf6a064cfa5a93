//! The numbers every part of ferlite must agree on: class order, input size, pixel normalisation.

/// FER2013's seven classes in its canonical label order (the `emotion` column of `fer2013.csv`).
pub const EMOTIONS: [&str; 7] = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];

/// Number of emotion classes.
pub const NUM_CLASSES: usize = EMOTIONS.len();

/// Faces are square grayscale images of this side length.
pub const FACE_SIZE: usize = 48;

/// Pixels in one face (48 x 48 = 2304, the length of a `pixels` field in `fer2013.csv`).
pub const FACE_PIXELS: usize = FACE_SIZE * FACE_SIZE;

/// Mean and standard deviation of FER2013 training pixels scaled to 0..1, measured over all 28,709
/// training images (`ferlite stats` recomputes them). Inputs are normalised as `(p / 255 - MEAN) / STD`.
pub const PIXEL_MEAN: f32 = 0.5077;
pub const PIXEL_STD: f32 = 0.2550;

/// The class index for a name such as `"happy"` (case-insensitive).
pub fn emotion_index(name: &str) -> Option<usize> {
    EMOTIONS.iter().position(|e| e.eq_ignore_ascii_case(name))
}

/// Normalise 8-bit pixels into the network's input range.
pub fn normalize_pixels(pixels: &[u8], out: &mut [f32]) {
    for (o, &p) in out.iter_mut().zip(pixels) {
        *o = (p as f32 / 255.0 - PIXEL_MEAN) / PIXEL_STD;
    }
}
