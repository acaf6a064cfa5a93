//! Training-time augmentation of 48x48 faces: what real cameras do to a face (an exposure curve,
//! light from one side, a soft lens, sensor noise), then one random affine warp (flip, rotation,
//! scale, shift) with bilinear sampling and edge clamping, then random erasing.

use crate::emotion::{normalize_pixels, standardize, FACE_PIXELS, FACE_SIZE};
use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AugmentConfig {
    /// Mirror left-right with probability 0.5.
    pub flip: bool,
    /// Rotation drawn uniformly from ±this many degrees.
    pub max_rotation_deg: f32,
    /// Shift drawn uniformly from ±this fraction of the side, per axis.
    pub max_shift: f32,
    /// Zoom drawn uniformly from `1 ± max_zoom` (a random resized crop when > 1).
    pub max_zoom: f32,
    /// Probability of erasing one random rectangle (2-20% of the face, set to the mean pixel).
    pub erase_prob: f32,
    /// Probability of an exposure curve: pixels (0-1) raised to γ, log-uniform in
    /// `[1/max_gamma, max_gamma]`. Faces are standardised per face, so only non-linear changes
    /// of brightness reach the network.
    pub gamma_prob: f32,
    pub max_gamma: f32,
    /// Probability of light from one side: pixels multiplied by a ramp across the face, in a
    /// random direction, from `1 - s` to `1 + s`, `s` uniform in `[0, max_lighting]`.
    pub lighting_prob: f32,
    pub max_lighting: f32,
    /// Probability of a slight Gaussian blur, σ uniform in `[0.3, max_blur_sigma]` pixels (a soft
    /// webcam, a small face enlarged).
    pub blur_prob: f32,
    pub max_blur_sigma: f32,
    /// Probability of Gaussian pixel noise, its standard deviation uniform in `[0, max_noise]`
    /// (in standardised units, where the face has standard deviation 1).
    pub noise_prob: f32,
    pub max_noise: f32,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig {
            flip: true,
            max_rotation_deg: 15.0,
            max_shift: 0.12,
            max_zoom: 0.2,
            erase_prob: 0.3,
            gamma_prob: 0.5,
            max_gamma: 1.6,
            lighting_prob: 0.3,
            max_lighting: 0.5,
            blur_prob: 0.2,
            max_blur_sigma: 1.2,
            noise_prob: 0.2,
            max_noise: 0.1,
        }
    }
}

impl AugmentConfig {
    pub fn none() -> Self {
        AugmentConfig {
            flip: false,
            max_rotation_deg: 0.0,
            max_shift: 0.0,
            max_zoom: 0.0,
            erase_prob: 0.0,
            gamma_prob: 0.0,
            max_gamma: 1.0,
            lighting_prob: 0.0,
            max_lighting: 0.0,
            blur_prob: 0.0,
            max_blur_sigma: 0.0,
            noise_prob: 0.0,
            max_noise: 0.0,
        }
    }

    /// Why these settings cannot augment, if they cannot (each check fails on NaN).
    pub fn check(&self) -> Result<(), String> {
        let ranges = [
            ("max_rotation_deg", self.max_rotation_deg, 0.0, 180.0),
            ("max_shift", self.max_shift, 0.0, 1.0),
            ("max_zoom", self.max_zoom, 0.0, 0.9),
            ("erase_prob", self.erase_prob, 0.0, 1.0),
            ("gamma_prob", self.gamma_prob, 0.0, 1.0),
            ("max_gamma", self.max_gamma, 1.0, 4.0),
            ("lighting_prob", self.lighting_prob, 0.0, 1.0),
            ("max_lighting", self.max_lighting, 0.0, 1.0),
            ("blur_prob", self.blur_prob, 0.0, 1.0),
            ("max_blur_sigma", self.max_blur_sigma, 0.0, 4.0),
            ("noise_prob", self.noise_prob, 0.0, 1.0),
            ("max_noise", self.max_noise, 0.0, 1.0),
        ];
        for (name, value, min, max) in ranges {
            if !(min..=max).contains(&value) {
                return Err(format!("augment.{name} {value} is outside [{min}, {max}]"));
            }
        }
        Ok(())
    }

    /// A randomly transformed, normalised copy of one face, written to `out` (2304 values); the
    /// random draws follow the order of the steps.
    pub fn apply(&self, pixels: &[u8], rng: &mut impl Rng, out: &mut [f32]) {
        let mut face = [0.0f32; FACE_PIXELS];
        for (v, &p) in face.iter_mut().zip(pixels) {
            *v = p as f32 / 255.0;
        }
        let uniform = |rng: &mut dyn rand::RngCore, max: f32| if max > 0.0 { rng.random_range(-max..=max) } else { 0.0 };
        let happens = |rng: &mut dyn rand::RngCore, p: f32| p > 0.0 && rng.random_bool(p as f64);

        if happens(rng, self.gamma_prob) {
            let gamma = uniform(rng, self.max_gamma.ln()).exp();
            face.iter_mut().for_each(|v| *v = v.powf(gamma));
        }
        if happens(rng, self.lighting_prob) {
            let direction = rng.random_range(0.0..std::f32::consts::TAU);
            let strength = rng.random_range(0.0..=self.max_lighting);
            side_light(&mut face, direction, strength);
        }
        if happens(rng, self.blur_prob) {
            let sigma = rng.random_range(0.3..=self.max_blur_sigma.max(0.3));
            gaussian_blur(&mut face, sigma);
        }
        standardize(&mut face);

        let flip = if self.flip && rng.random_bool(0.5) { -1.0 } else { 1.0 };
        let angle = uniform(rng, self.max_rotation_deg).to_radians();
        let zoom = 1.0 + uniform(rng, self.max_zoom);
        let size = FACE_SIZE as f32;
        let (tx, ty) = (uniform(rng, self.max_shift) * size, uniform(rng, self.max_shift) * size);
        warp(&face, flip, angle, zoom, tx, ty, out);
        if happens(rng, self.erase_prob) {
            erase_random_rect(out, rng);
        }
        if happens(rng, self.noise_prob) {
            let std = rng.random_range(0.0..=self.max_noise);
            out.iter_mut().for_each(|v| *v += std * rng.sample::<f32, _>(StandardNormal));
        }
    }
}

/// Multiplies a 0-1 face by `1 + strength * d`, where `d` runs from -1 to 1 across the face in
/// `direction` (radians), as light falling from one side would.
fn side_light(face: &mut [f32], direction: f32, strength: f32) {
    let c = (FACE_SIZE as f32 - 1.0) / 2.0;
    let (sin, cos) = direction.sin_cos();
    for y in 0..FACE_SIZE {
        for x in 0..FACE_SIZE {
            let d = ((x as f32 - c) * cos + (y as f32 - c) * sin) / c;
            let v = &mut face[y * FACE_SIZE + x];
            *v = (*v * (1.0 + strength * d.clamp(-1.0, 1.0))).max(0.0);
        }
    }
}

/// Separable Gaussian blur of a 48x48 face in place, edges extended.
fn gaussian_blur(face: &mut [f32], sigma: f32) {
    let radius = (3.0 * sigma).ceil() as isize;
    let taps: Vec<f32> = (-radius..=radius).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = taps.iter().sum();
    let taps: Vec<f32> = taps.iter().map(|t| t / total).collect();
    let n = FACE_SIZE as isize;
    let mut rows = [0.0f32; FACE_PIXELS];
    for y in 0..n {
        for x in 0..n {
            rows[(y * n + x) as usize] = taps.iter().enumerate().map(|(k, t)| t * face[(y * n + (x + k as isize - radius).clamp(0, n - 1)) as usize]).sum();
        }
    }
    for y in 0..n {
        for x in 0..n {
            face[(y * n + x) as usize] = taps.iter().enumerate().map(|(k, t)| t * rows[((y + k as isize - radius).clamp(0, n - 1) * n + x) as usize]).sum();
        }
    }
}

/// Output pixel `q` samples the input at `c + F·R(-angle)·(q - c - t) / zoom` (the inverse of
/// "flip, rotate, zoom about the centre, then shift").
fn warp(src: &[f32], flip: f32, angle: f32, zoom: f32, tx: f32, ty: f32, out: &mut [f32]) {
    let n = FACE_SIZE;
    let c = (n as f32 - 1.0) / 2.0;
    let (sin, cos) = angle.sin_cos();
    for qy in 0..n {
        for qx in 0..n {
            let (dx, dy) = (qx as f32 - c - tx, qy as f32 - c - ty);
            let (rx, ry) = ((cos * dx + sin * dy) / zoom, (-sin * dx + cos * dy) / zoom);
            out[qy * n + qx] = bilinear(src, c + flip * rx, c + ry);
        }
    }
}

/// Bilinear sample with coordinates clamped to the image (edge pixels extend outwards).
fn bilinear(src: &[f32], x: f32, y: f32) -> f32 {
    let max = (FACE_SIZE - 1) as f32;
    let (x, y) = (x.clamp(0.0, max), y.clamp(0.0, max));
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(FACE_SIZE - 1), (y0 + 1).min(FACE_SIZE - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: usize, yy: usize| src[yy * FACE_SIZE + xx];
    let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
    let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Random erasing (Zhong et al. 2017): one rectangle of 2-20% of the area, aspect 0.3-3.3, set
/// to 0 (the mean after normalisation).
fn erase_random_rect(img: &mut [f32], rng: &mut impl Rng) {
    let n = FACE_SIZE as f32;
    let area = rng.random_range(0.02..0.2) * n * n;
    let aspect = rng.random_range(0.3f32.ln()..3.3f32.ln()).exp();
    let h = ((area * aspect).sqrt().round() as usize).clamp(1, FACE_SIZE);
    let w = ((area / aspect).sqrt().round() as usize).clamp(1, FACE_SIZE);
    let y0 = rng.random_range(0..=FACE_SIZE - h);
    let x0 = rng.random_range(0..=FACE_SIZE - w);
    for y in y0..y0 + h {
        img[y * FACE_SIZE + x0..y * FACE_SIZE + x0 + w].fill(0.0);
    }
}

/// A deterministic view of a face for test-time augmentation: optionally mirrored, shifted by
/// `(dx, dy)` pixels (edges extend), normalised into `out`.
pub fn fixed_view(pixels: &[u8], flip: bool, dx: f32, dy: f32, out: &mut [f32]) {
    let mut norm = [0.0f32; FACE_PIXELS];
    normalize_pixels(pixels, &mut norm);
    warp(&norm, if flip { -1.0 } else { 1.0 }, 0.0, 1.0, dx, dy, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn no_augmentation_is_plain_normalisation() {
        let pixels: Vec<u8> = (0..FACE_PIXELS).map(|i| (i % 251) as u8).collect();
        let mut out = vec![0.0; FACE_PIXELS];
        AugmentConfig::none().apply(&pixels, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0), &mut out);
        let mut expected = vec![0.0; FACE_PIXELS];
        normalize_pixels(&pixels, &mut expected);
        assert!(out.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 1e-5));
    }

    #[test]
    fn flip_mirrors_columns() {
        let pixels: Vec<u8> = (0..FACE_PIXELS).map(|i| (i % FACE_SIZE) as u8).collect();
        let mut norm = vec![0.0; FACE_PIXELS];
        normalize_pixels(&pixels, &mut norm);
        let mut out = vec![0.0; FACE_PIXELS];
        warp(&norm, -1.0, 0.0, 1.0, 0.0, 0.0, &mut out);
        assert!((out[0] - norm[FACE_SIZE - 1]).abs() < 1e-5);
    }

    #[test]
    fn same_seed_gives_same_augmentation() {
        let pixels: Vec<u8> = (0..FACE_PIXELS).map(|i| (i * 7 % 256) as u8).collect();
        let run = |seed| {
            let mut out = vec![0.0; FACE_PIXELS];
            AugmentConfig::default().apply(&pixels, &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed), &mut out);
            out
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
    }

    #[test]
    fn blur_keeps_a_flat_face_flat_and_softens_an_edge() {
        let mut flat = [0.4f32; FACE_PIXELS];
        gaussian_blur(&mut flat, 1.0);
        assert!(flat.iter().all(|v| (v - 0.4).abs() < 1e-5));
        let mut edge: Vec<f32> = (0..FACE_PIXELS).map(|i| if i % FACE_SIZE < 24 { 0.0 } else { 1.0 }).collect();
        gaussian_blur(&mut edge, 1.0);
        let (left, right) = (edge[23], edge[24]);
        assert!(left > 0.2 && left < 0.5 && right > 0.5 && right < 0.8, "{left} {right}");
        assert!(edge[0] < 1e-4 && edge[47] > 1.0 - 1e-4);
    }

    #[test]
    fn side_light_brightens_one_side_and_darkens_the_other() {
        let mut face = [0.5f32; FACE_PIXELS];
        side_light(&mut face, 0.0, 0.4); // light from the right
        assert!((face[FACE_SIZE - 1] - 0.7).abs() < 1e-5 && (face[0] - 0.3).abs() < 1e-5);
    }

    #[test]
    fn camera_effects_alone_keep_the_face_standardised_and_in_place() {
        let pixels: Vec<u8> = (0..FACE_PIXELS).map(|i| ((i % FACE_SIZE) * 5) as u8).collect();
        let only_camera = AugmentConfig { gamma_prob: 1.0, lighting_prob: 1.0, blur_prob: 1.0, ..AugmentConfig::none() };
        let mut out = vec![0.0; FACE_PIXELS];
        only_camera.apply(&pixels, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3), &mut out);
        let mean = out.iter().sum::<f32>() / out.len() as f32;
        let std = (out.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / out.len() as f32).sqrt();
        assert!(mean.abs() < 1e-4 && (std - 1.0).abs() < 1e-3, "mean {mean} std {std}");
        // No warp: the horizontal ramp still rises from left to right.
        assert!(out[FACE_SIZE - 1] > out[0]);
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        assert_eq!(AugmentConfig::default().check(), Ok(()));
        assert_eq!(AugmentConfig::none().check(), Ok(()));
        for bad in [AugmentConfig { max_gamma: 0.5, ..AugmentConfig::default() }, AugmentConfig { blur_prob: f32::NAN, ..AugmentConfig::default() }] {
            assert!(bad.check().is_err());
        }
    }
}
