//! Training-time augmentation of 48x48 faces: one random affine warp (flip, rotation, scale,
//! shift) with bilinear sampling and edge clamping, then random erasing.

use crate::emotion::{normalize_pixels, FACE_PIXELS, FACE_SIZE};
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

impl Default for AugmentConfig {
    fn default() -> Self {
        AugmentConfig { flip: true, max_rotation_deg: 10.0, max_shift: 0.1, max_zoom: 0.1, erase_prob: 0.25 }
    }
}

impl AugmentConfig {
    pub fn none() -> Self {
        AugmentConfig { flip: false, max_rotation_deg: 0.0, max_shift: 0.0, max_zoom: 0.0, erase_prob: 0.0 }
    }

    /// A randomly transformed, normalised copy of one face, written to `out` (2304 values).
    pub fn apply(&self, pixels: &[u8], rng: &mut impl Rng, out: &mut [f32]) {
        let mut norm = [0.0f32; FACE_PIXELS];
        normalize_pixels(pixels, &mut norm);
        let uniform = |rng: &mut dyn rand::RngCore, max: f32| if max > 0.0 { rng.random_range(-max..=max) } else { 0.0 };
        let flip = if self.flip && rng.random_bool(0.5) { -1.0 } else { 1.0 };
        let angle = uniform(rng, self.max_rotation_deg).to_radians();
        let zoom = 1.0 + uniform(rng, self.max_zoom);
        let size = FACE_SIZE as f32;
        let (tx, ty) = (uniform(rng, self.max_shift) * size, uniform(rng, self.max_shift) * size);
        warp(&norm, flip, angle, zoom, tx, ty, out);
        if self.erase_prob > 0.0 && rng.random_bool(self.erase_prob as f64) {
            erase_random_rect(out, rng);
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
}
