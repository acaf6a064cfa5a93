//! Gaussian blur of a 48x48 face, used to match a sharp input to the sharpness the model was
//! trained at. FER2013's training images here are low-passed (like a Gaussian of σ ≈ 3 px) while
//! its test images are sharp (`docs/data.md`); a model trained on the former sees the latter as
//! out of distribution unless they are blurred the same way first.

use crate::emotion::{FACE_PIXELS, FACE_SIZE};
use rayon::prelude::*;

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

/// Blurs `pixels` (48x48) with a Gaussian of standard deviation `sigma` pixels, the face mirrored
/// about its edge pixels beyond the edges (OpenCV's default, `BORDER_REFLECT_101`): the training
/// faces' edges look blurred that way, and on `val/` it scores higher without test-time
/// augmentation than extending the edge pixels (docs/experiments.md, session 15). `sigma <= 0`
/// returns the face unchanged; `sigma` above [`MAX_BLUR_SIGMA`] is taken as it.
pub fn gaussian_blur(pixels: &[u8], sigma: f32) -> Vec<u8> {
    if sigma.is_nan() || sigma <= 0.0 {
        return pixels.to_vec();
    }
    let src: Vec<f32> = pixels.iter().map(|&p| p as f32).collect();
    blur_values(&src, sigma).iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect()
}

/// Blurs `pixels` (48x48) up to about `target_sigma`: by √(target² − present²), where `present` is
/// the blur the face already has ([`estimate_sigma`]; Gaussians add in quadrature). A sharp face
/// gets nearly the whole target, a face as blurred as the training faces nothing more. A fixed
/// blur of the target would blur those twice: on `val/` pre-blurred like `train/` (σ 3) that costs
/// 11 points of accuracy, which this keeps (docs/experiments.md, session 15).
pub fn blur_to(pixels: &[u8], target_sigma: f32) -> Vec<u8> {
    if target_sigma.is_nan() || target_sigma <= 0.0 {
        return pixels.to_vec();
    }
    top_up(pixels, estimate_sigma(pixels), target_sigma)
}

/// [`blur_to`] for a face whose present blur is already estimated (`present`, from
/// [`estimate_sigma`]): for several targets, the estimate is made once.
pub fn top_up(pixels: &[u8], present: f32, target_sigma: f32) -> Vec<u8> {
    gaussian_blur(pixels, (target_sigma * target_sigma - present * present).max(0.0).sqrt())
}

/// The σ of the Gaussian blur `pixels` (48x48) already has, relative to a sharp FER2013 test face
/// (0), from how much of its gradient energy survives a further blur of σ 1: a sharp face keeps
/// about 27% of it, a face blurred by σ 3 about 90%. Per face the estimate scatters with the
/// content (on `val/` blurred by σ 2, 80% of faces read 1.7-2.4), so it is for topping a blur up,
/// not for measuring one. A flat face reads 0.
pub fn estimate_sigma(pixels: &[u8]) -> f32 {
    share_kept_by_unit_blur(pixels).map_or(0.0, interpolate_sigma)
}

/// 10th, 50th and 90th percentile of [`estimate_sigma`] over `faces` (48x48 each, face after
/// face); zeros for no faces.
pub fn estimated_sigma_percentiles(faces: &[u8]) -> [f32; 3] {
    let mut sigmas: Vec<f32> = faces.par_chunks(FACE_PIXELS).map(estimate_sigma).collect();
    if sigmas.is_empty() {
        return [0.0; 3];
    }
    sigmas.sort_by(f32::total_cmp);
    [0.1, 0.5, 0.9].map(|q| sigmas[((sigmas.len() - 1) as f32 * q).round() as usize])
}

/// The share of `pixels`' gradient energy (48x48) that a further Gaussian blur of σ 1 keeps;
/// `None` for a flat face. The measure behind [`estimate_sigma`].
pub fn share_kept_by_unit_blur(pixels: &[u8]) -> Option<f32> {
    let src: Vec<f32> = pixels.iter().map(|&p| p as f32).collect();
    let before = gradient_energy(&src);
    (before >= 1e-3).then(|| gradient_energy(&blur_values(&src, 1.0)) / before)
}

/// Median share of gradient energy a σ 1 blur keeps, for `val/` faces blurred by σ = 0, 0.25,
/// ..., 6 with [`gaussian_blur`]: `cargo run --release --example blur_calibration`.
const KEPT_BY_SIGMA: [f32; 25] = [0.2690, 0.2690, 0.3750, 0.5264, 0.6288, 0.7056, 0.7614, 0.8031, 0.8341, 0.8576, 0.8761, 0.8903, 0.9017, 0.9111, 0.9189, 0.9251, 0.9303, 0.9345, 0.9379, 0.9405, 0.9425, 0.9441, 0.9449, 0.9454, 0.9455];
/// σ between neighbouring entries of the calibration table behind [`estimate_sigma`].
pub const SIGMA_STEP: f32 = 0.25;

/// σ for a kept share by linear interpolation in [`KEPT_BY_SIGMA`], clamped to its ends.
fn interpolate_sigma(kept: f32) -> f32 {
    let table = &KEPT_BY_SIGMA;
    if kept <= table[0] {
        return 0.0;
    }
    match table.windows(2).position(|w| kept <= w[1]) {
        Some(i) => {
            let (lo, hi) = (table[i], table[i + 1]);
            let within = if hi > lo { (kept - lo) / (hi - lo) } else { 0.0 };
            (i as f32 + within) * SIGMA_STEP
        }
        None => (table.len() - 1) as f32 * SIGMA_STEP,
    }
}

/// Mean squared difference between horizontal and vertical neighbours, summed over both.
fn gradient_energy(values: &[f32]) -> f32 {
    let n = FACE_SIZE;
    let (mut dx, mut dy) = (0.0f32, 0.0f32);
    for y in 0..n {
        for x in 0..n {
            let v = values[y * n + x];
            if x + 1 < n {
                dx += (values[y * n + x + 1] - v).powi(2);
            }
            if y + 1 < n {
                dy += (values[(y + 1) * n + x] - v).powi(2);
            }
        }
    }
    (dx + dy) / (n * (n - 1)) as f32
}

/// The separable Gaussian of [`gaussian_blur`] on unrounded values. Both passes run along whole
/// rows (tap outer, pixel inner) so the compiler vectorises them: 5x faster than a sum per pixel.
fn blur_values(src: &[f32], sigma: f32) -> Vec<f32> {
    let sigma = sigma.min(MAX_BLUR_SIGMA);
    let radius = (3.0 * sigma).ceil() as isize;
    let mut weights: Vec<f32> = (-radius..=radius).map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = weights.iter().sum();
    weights.iter_mut().for_each(|w| *w /= total);
    let n = FACE_SIZE as isize;
    // Mirror about the edge pixels (…, 2, 1 | 0, 1, 2, …), repeated for windows wider than the face.
    let mirror = |v: isize| {
        let period = 2 * (n - 1);
        let m = v.rem_euclid(period);
        (if m < n { m } else { period - m }) as usize
    };
    let (size, r) = (FACE_SIZE, radius as usize);
    let mut horizontal = vec![0.0f32; src.len()];
    let mut padded = vec![0.0f32; size + 2 * r];
    for (row, out) in src.chunks(size).zip(horizontal.chunks_mut(size)) {
        padded.iter_mut().enumerate().for_each(|(i, p)| *p = row[mirror(i as isize - radius)]);
        for (k, &w) in weights.iter().enumerate() {
            out.iter_mut().zip(&padded[k..k + size]).for_each(|(o, &v)| *o += w * v);
        }
    }
    let mut out = vec![0.0f32; src.len()];
    for (y, out_row) in out.chunks_mut(size).enumerate() {
        for (k, &w) in weights.iter().enumerate() {
            let source = mirror(y as isize + k as isize - radius);
            out_row.iter_mut().zip(&horizontal[source * size..(source + 1) * size]).for_each(|(o, &v)| *o += w * v);
        }
    }
    out
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
    fn edges_are_mirrored_about_the_edge_pixel() {
        // A face bright only in its first column: mirrored, the column's neighbours outside the face
        // are column 1 (dark), so the edge loses brightness to both sides; extended, it would keep
        // most of it. 1-2-1 weights (σ→ small) make the expected values exact to rounding.
        let face: Vec<u8> = (0..FACE_PIXELS).map(|i| if i % FACE_SIZE == 0 { 240 } else { 0 }).collect();
        let blurred = gaussian_blur(&face, 0.6);
        let (w0, w1) = (1.0f32, (-1.0f32 / (2.0 * 0.36)).exp());
        let total = w0 + 2.0 * w1 + 2.0 * (-4.0f32 / (2.0 * 0.36)).exp();
        let expected_edge = (240.0 * w0 / total).round() as u8;
        let row = &blurred[24 * FACE_SIZE..25 * FACE_SIZE];
        assert!((row[0] as i32 - expected_edge as i32).abs() <= 1, "edge {} expected {expected_edge}", row[0]);
        assert!(row[1] > 0 && row[1] < row[0]);
        // The widest window (σ 16, 48 px either side) still mirrors back into the face.
        assert_eq!(gaussian_blur(&[90; FACE_PIXELS], MAX_BLUR_SIGMA), vec![90; FACE_PIXELS]);
    }

    /// A sharp face in the statistics that matter here: random blobs at every scale (a 1/f-like
    /// spectrum, as photos have), sampled fresh per pixel so the finest scale is one pixel.
    fn textured_face(seed: u64) -> Vec<u8> {
        use rand::Rng;
        let mut rng = crate::rng::rng_for(&[seed]);
        let mut values = vec![0.0f32; FACE_PIXELS];
        for octave in 0..5 {
            let cell = 1usize << octave;
            let coarse: Vec<f32> = (0..FACE_PIXELS).map(|_| rng.random::<f32>() - 0.5).collect();
            for (i, v) in values.iter_mut().enumerate() {
                let (y, x) = (i / FACE_SIZE / cell * cell, i % FACE_SIZE / cell * cell);
                *v += coarse[y * FACE_SIZE + x] * cell as f32;
            }
        }
        let (lo, hi) = values.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        values.iter().map(|v| (255.0 * (v - lo) / (hi - lo)).round() as u8).collect()
    }

    #[test]
    fn the_estimated_blur_grows_with_the_blur_applied() {
        assert_eq!(estimate_sigma(&[128; FACE_PIXELS]), 0.0, "a flat face");
        for seed in 0..4 {
            let face = textured_face(seed);
            let estimates: Vec<f32> = [0.0, 1.0, 2.0, 3.0, 4.0].iter().map(|&s| estimate_sigma(&gaussian_blur(&face, s))).collect();
            assert!(estimates.windows(2).all(|w| w[1] > w[0]), "seed {seed}: {estimates:?}");
            assert!(estimates[0] < 0.75 && (1.5..=4.5).contains(&estimates[3]), "seed {seed}: {estimates:?}");
        }
    }

    #[test]
    fn blur_to_tops_up_instead_of_blurring_twice() {
        let face = textured_face(7);
        assert_eq!(blur_to(&face, 0.0), face);
        let present = estimate_sigma(&face);
        let topped = (3.2f32 * 3.2 - present * present).sqrt();
        assert_eq!(blur_to(&face, 3.2), gaussian_blur(&face, topped));
        // A face already as blurred as the target changes far less than a second full blur would.
        let once = gaussian_blur(&face, 3.2);
        let change = |other: &[u8]| once.iter().zip(other).map(|(&a, &b)| (a as f32 - b as f32).abs()).sum::<f32>();
        assert!(change(&blur_to(&once, 3.2)) < 0.5 * change(&gaussian_blur(&once, 3.2)));
    }

    #[test]
    fn zero_sigma_is_identity() {
        let face: Vec<u8> = (0..FACE_PIXELS).map(|i| (i % 256) as u8).collect();
        assert_eq!(gaussian_blur(&face, 0.0), face);
    }
}
