//! Gaussian blur of a 48x48 face, used to match a sharp input to the sharpness the model was
//! trained at. FER2013's training images here are low-passed (like a Gaussian of σ ≈ 3 px) while
//! its test images are sharp (`docs/data.md`); a model trained on the former sees the latter as
//! out of distribution unless they are blurred the same way first.

use crate::emotion::FACE_SIZE;

/// Largest σ a model or `--input-blur` may ask for: a 16 px Gaussian (a 48 px window either side)
/// already leaves a 48 px face all but flat.
pub const MAX_BLUR_SIGMA: f32 = 16.0;

/// `sigma` if a model may blur its input by it (0, no blur, to [`MAX_BLUR_SIGMA`]), else why not:
/// the one rule for `--input-blur` and for the σ in a model file's config.
pub fn check_sigma(sigma: f32) -> Result<f32, String> {
    if (0.0..=MAX_BLUR_SIGMA).contains(&sigma) {
        Ok(sigma)
    } else {
        Err(format!("σ {sigma} is outside 0..={MAX_BLUR_SIGMA} px"))
    }
}

/// Blurs `pixels` (48x48) with a Gaussian of standard deviation `sigma` pixels, edges extended.
/// `sigma <= 0` returns the face unchanged; `sigma` above [`MAX_BLUR_SIGMA`] is taken as it.
pub fn gaussian_blur(pixels: &[u8], sigma: f32) -> Vec<u8> {
    if sigma.is_nan() || sigma <= 0.0 {
        return pixels.to_vec();
    }
    let sigma = sigma.min(MAX_BLUR_SIGMA);
    let radius = (3.0 * sigma).ceil() as isize;
    let weights: Vec<f32> = (-radius..=radius).map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = weights.iter().sum();
    let n = FACE_SIZE as isize;
    let clamp = |v: isize| v.clamp(0, n - 1) as usize;
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        let mut out = vec![0.0f32; src.len()];
        for y in 0..n {
            for x in 0..n {
                let mut acc = 0.0;
                for (k, w) in weights.iter().enumerate() {
                    let d = k as isize - radius;
                    let (sx, sy) = if horizontal { (clamp(x + d), y as usize) } else { (x as usize, clamp(y + d)) };
                    acc += w * src[sy * FACE_SIZE + sx];
                }
                out[y as usize * FACE_SIZE + x as usize] = acc / total;
            }
        }
        out
    };
    let src: Vec<f32> = pixels.iter().map(|&p| p as f32).collect();
    let blurred = pass(&pass(&src, true), false);
    blurred.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emotion::FACE_PIXELS;

    #[test]
    fn blur_keeps_a_constant_face_and_the_mean() {
        assert_eq!(gaussian_blur(&[77; FACE_PIXELS], 2.0), vec![77; FACE_PIXELS]);
        let stripes: Vec<u8> = (0..FACE_PIXELS).map(|i| if i % 2 == 0 { 200 } else { 0 }).collect();
        let blurred = gaussian_blur(&stripes, 2.0);
        // One-pixel stripes vanish into their mean (away from the extended edges).
        let row = &blurred[24 * FACE_SIZE..25 * FACE_SIZE];
        assert!(row[8..40].iter().all(|&v| (v as i32 - 100).abs() <= 1), "{row:?}");
    }

    #[test]
    fn zero_sigma_is_identity() {
        let face: Vec<u8> = (0..FACE_PIXELS).map(|i| (i % 256) as u8).collect();
        assert_eq!(gaussian_blur(&face, 0.0), face);
    }
}
