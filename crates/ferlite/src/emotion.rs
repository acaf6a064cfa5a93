//! The numbers every part of ferlite must agree on: class order, input size, pixel normalisation.

/// FER2013's seven classes in its canonical label order (the `emotion` column of `fer2013.csv`).
pub const EMOTIONS: [&str; 7] = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];

/// Each class's colour, in the order of [`EMOTIONS`]: boxes and bars in annotated images, curves
/// in the evaluation plots and the service's web page all use these (matplotlib's tab10 colours).
pub const EMOTION_COLORS: [[u8; 3]; 7] = [[0xd6, 0x27, 0x28], [0x8c, 0x56, 0x4b], [0x94, 0x67, 0xbd], [0x2c, 0xa0, 0x2c], [0x1f, 0x77, 0xb4], [0xff, 0x7f, 0x0e], [0x7f, 0x7f, 0x7f]];

/// Number of emotion classes.
pub const NUM_CLASSES: usize = EMOTIONS.len();

/// Faces are square grayscale images of this side length.
pub const FACE_SIZE: usize = 48;

/// Pixels in one face (48 x 48 = 2304, the length of a `pixels` field in `fer2013.csv`).
pub const FACE_PIXELS: usize = FACE_SIZE * FACE_SIZE;

/// A face whose pixels are nearly constant keeps this much standard deviation (on a 0-1 scale)
/// so that normalising it does not amplify noise without bound.
pub const MIN_PIXEL_STD: f32 = 1.0 / 64.0;

/// Normalises 8-bit pixels into the network's input range: each face is standardised to mean 0
/// and standard deviation 1. Per-face (not dataset-wide) statistics make the input independent of
/// a photo's exposure and contrast.
pub fn normalize_pixels(pixels: &[u8], out: &mut [f32]) {
    let (mean, std) = pixel_mean_std(pixels);
    let std = std.max(MIN_PIXEL_STD);
    for (o, &p) in out.iter_mut().zip(pixels) {
        *o = (p as f32 / 255.0 - mean) / std;
    }
}

/// Standardises a face given on a 0-1 scale to mean 0 and standard deviation 1 (at least
/// [`MIN_PIXEL_STD`] before scaling), in place: as [`normalize_pixels`] does for 8-bit
/// pixels, for faces that training augmentation has already changed in floating point.
pub fn standardize(values: &mut [f32]) {
    let (mean, std) = mean_std(values);
    let std = std.max(MIN_PIXEL_STD);
    for v in values.iter_mut() {
        *v = (*v - mean) / std;
    }
}

/// Mean and standard deviation of 8-bit pixels on a 0-1 scale (0 for none).
pub fn pixel_mean_std(pixels: &[u8]) -> (f32, f32) {
    let n = pixels.len().max(1) as f32;
    let mean = pixels.iter().map(|&p| p as f32).sum::<f32>() / n / 255.0;
    let var = pixels.iter().map(|&p| (p as f32 / 255.0 - mean).powi(2)).sum::<f32>() / n;
    (mean, var.sqrt())
}

fn mean_std(values: &[f32]) -> (f32, f32) {
    let n = values.len().max(1) as f32;
    let mean = values.iter().sum::<f32>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
    (mean, var.sqrt())
}

/// The class index for a class folder's name: `"happy"` (any case), or FER2013's label number
/// `"3"` (folders made from the CSV's `emotion` column).
pub fn emotion_index(name: &str) -> Option<usize> {
    let by_number = name.parse::<usize>().ok().filter(|&i| i < EMOTIONS.len() && name.len() == 1);
    by_number.or_else(|| EMOTIONS.iter().position(|e| e.eq_ignore_ascii_case(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_folders_are_named_by_emotion_or_by_label_number() {
        assert_eq!([emotion_index("happy"), emotion_index("Happy"), emotion_index("3")], [Some(3); 3]);
        assert_eq!([emotion_index("0"), emotion_index("6"), emotion_index("neutral")], [Some(0), Some(6), Some(6)]);
        assert_eq!([emotion_index("7"), emotion_index("03"), emotion_index("-1"), emotion_index("joy")], [None; 4]);
    }

    #[test]
    fn normalised_face_has_zero_mean_and_unit_std() {
        let pixels: Vec<u8> = (0..FACE_PIXELS).map(|i| (i % 97) as u8 + 40).collect();
        let mut out = vec![0.0; FACE_PIXELS];
        normalize_pixels(&pixels, &mut out);
        let mean = out.iter().sum::<f32>() / out.len() as f32;
        let std = (out.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / out.len() as f32).sqrt();
        assert!(mean.abs() < 1e-4 && (std - 1.0).abs() < 1e-3, "mean {mean} std {std}");
    }

    #[test]
    fn constant_face_normalises_to_zeros_not_nan() {
        let mut out = vec![1.0; FACE_PIXELS];
        normalize_pixels(&[128; FACE_PIXELS], &mut out);
        assert!(out.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn contrast_and_brightness_do_not_change_the_input() {
        let a: Vec<u8> = (0..FACE_PIXELS).map(|i| (i * 7 % 100) as u8).collect();
        let b: Vec<u8> = a.iter().map(|&p| p * 2 + 20).collect();
        let (mut na, mut nb) = (vec![0.0; FACE_PIXELS], vec![0.0; FACE_PIXELS]);
        normalize_pixels(&a, &mut na);
        normalize_pixels(&b, &mut nb);
        assert!(na.iter().zip(&nb).all(|(x, y)| (x - y).abs() < 1e-4));
    }
}
