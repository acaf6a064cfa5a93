//! KxK convolution (stride 1, padding K/2; 3x3 for the classifier, 5x5 for dlib's face detector)
//! computed directly with AVX2+FMA, for inference.
//!
//! im2col + GEMM copies each input nine times and the GEMM library packs both operands on every
//! call; at batch 1 those copies cost as much as a third of the arithmetic. Here the input is
//! copied once, into planes with a zero border, and read in place: output pixel `(y, x)` of a
//! padded row `w + 2` wide sits at flat index `y * (w + 2) + x`, and its tap `(ky, kx)` at that
//! index plus `ky * (w + 2) + kx`, so a tile of consecutive pixels of a row reads consecutive
//! inputs. A tile of 6 pixels x 16 output channels lives in twelve registers while the inner loop
//! walks `cin * 9` taps: two weight vectors, six broadcast input pixels, twelve FMAs. The paper
//! network's widths (48, 24, 12) are multiples of 6, so no work is wasted there.
//!
//! Used by [`crate::infer`] (3x3) and [`crate::faces::mmod`] (5x5, and its stride-2 5x5 as 3x3
//! over phases) when the CPU has AVX2 and FMA; elsewhere the im2col path runs.

/// Output channels per tile: two 8-lane registers.
const CO_TILE: usize = 16;
/// Consecutive output pixels of one row per tile.
const PX_TILE: usize = 6;

/// Most taps a kernel may have (9x9).
const MAX_TAPS: usize = 81;

/// A KxK convolution's weights packed for the kernel: `[cout / 16][K * K][cin][16]`.
#[derive(Clone, Debug)]
pub struct DirectConv<const K: usize> {
    cin: usize,
    cout: usize,
    packed: Vec<f32>,
}

/// The classifier's convolutions.
pub type DirectConv3x3 = DirectConv<3>;

impl<const K: usize> DirectConv<K> {
    const TAPS: usize = K * K;
    const BORDER: usize = K / 2;

    /// Packs `weight` `[cout, cin, K, K]`; `None` when the CPU lacks AVX2/FMA or `cout` is not a
    /// multiple of 16 (the caller keeps its im2col path).
    pub fn new(weight: &[f32], cin: usize, cout: usize) -> Option<Self> {
        const { assert!(K % 2 == 1 && K * K <= MAX_TAPS) };
        if !available() || !cout.is_multiple_of(CO_TILE) || weight.len() != cout * cin * Self::TAPS {
            return None;
        }
        let mut packed = vec![0.0; weight.len()];
        for co in 0..cout {
            for ci in 0..cin {
                for k in 0..Self::TAPS {
                    packed[((co / CO_TILE * Self::TAPS + k) * cin + ci) * CO_TILE + co % CO_TILE] = weight[(co * cin + ci) * Self::TAPS + k];
                }
            }
        }
        Some(DirectConv { cin, cout, packed })
    }

    /// Output channels come in blocks of this many (see [`run`](Self::run)).
    pub const CHANNEL_BLOCK: usize = CO_TILE;

    /// Copies `x` `[cin, h, w]` into `padded`: each plane with a zero border K/2 wide and zero
    /// slack after it (a tile that overhangs the last row's end reads into it).
    pub fn pad_input(&self, x: &[f32], (h, w): (usize, usize), padded: &mut Vec<f32>) {
        let (plane, b) = (padded_plane::<K>(h, w), Self::BORDER);
        padded.clear();
        padded.resize(self.cin * plane, 0.0);
        for (src, dst) in x.chunks_exact(h * w).zip(padded.chunks_exact_mut(plane)) {
            for (y, row) in src.chunks_exact(w).enumerate() {
                dst[(y + b) * (w + 2 * b) + b..][..w].copy_from_slice(row);
            }
        }
    }

    /// Output channels `channels` (start and length multiples of 16) of the convolution of the
    /// input that [`pad_input`](Self::pad_input) prepared, without bias, into `out`
    /// `[channels.len(), h * w]`. (Bias, residual and ReLU applied per value as the tile is stored
    /// measured slower than the caller's separate vectorised pass: 3.68 against 3.55 ms a face.)
    pub fn run(&self, padded: &[f32], (h, w): (usize, usize), channels: std::ops::Range<usize>, out: &mut [f32]) {
        assert!(channels.start.is_multiple_of(CO_TILE) && channels.end <= self.cout && channels.len().is_multiple_of(CO_TILE));
        assert_eq!(padded.len(), self.cin * padded_plane::<K>(h, w));
        assert_eq!(out.len(), channels.len() * h * w);
        assert!(available());
        // SAFETY: the CPU has AVX2 and FMA (checked above); every read stays inside `padded`: a
        // tile starts at `y * (w + 2b) + x0` with `y < h`, `x0 < w`, b = K/2, and its furthest tap
        // is `PX_TILE - 1 + 2b * (w + 2b) + 2b` beyond, inside its plane (see `padded_plane`).
        unsafe { self.run_avx2(padded, (h, w), channels, out) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, padded: &[f32], (h, w): (usize, usize), channels: std::ops::Range<usize>, out: &mut [f32]) {
        use std::arch::x86_64::*;
        let (row, plane, hw) = (w + 2 * Self::BORDER, padded_plane::<K>(h, w), h * w);
        let mut all_taps = [0usize; MAX_TAPS];
        all_taps.iter_mut().take(Self::TAPS).enumerate().for_each(|(k, tap)| *tap = (k / K) * row + k % K);
        let taps = &all_taps[..Self::TAPS];
        let input = padded.as_ptr();
        let mut tile = [[0.0f32; CO_TILE]; PX_TILE];
        for block in channels.start / CO_TILE..channels.end / CO_TILE {
            let weights = self.packed[block * self.cin * Self::TAPS * CO_TILE..][..self.cin * Self::TAPS * CO_TILE].as_ptr();
            let first_row = (block * CO_TILE - channels.start) * hw;
            for (y, x0) in (0..h).flat_map(|y| (0..w).step_by(PX_TILE).map(move |x0| (y, x0))) {
                let start = y * row + x0;
                let mut acc = [[_mm256_setzero_ps(); 2]; PX_TILE];
                // Taps outside, channels inside: neighbouring iterations read different planes, so
                // the compiler finds no broadcasts to keep across them (it would spill them).
                for (k, &tap) in taps.iter().enumerate() {
                    let wk = weights.add(k * self.cin * CO_TILE);
                    for ci in 0..self.cin {
                        let w = [_mm256_loadu_ps(wk.add(ci * CO_TILE)), _mm256_loadu_ps(wk.add(ci * CO_TILE + 8))];
                        let p = input.add(ci * plane + start + tap);
                        for (i, acc) in acc.iter_mut().enumerate() {
                            let x = _mm256_broadcast_ss(&*p.add(i));
                            acc[0] = _mm256_fmadd_ps(x, w[0], acc[0]);
                            acc[1] = _mm256_fmadd_ps(x, w[1], acc[1]);
                        }
                    }
                }
                for (values, acc) in tile.iter_mut().zip(&acc) {
                    _mm256_storeu_ps(values.as_mut_ptr(), acc[0]);
                    _mm256_storeu_ps(values.as_mut_ptr().add(8), acc[1]);
                }
                // A tile past the row's end (when 6 does not divide the width) computed border pixels: drop them.
                for (i, values) in tile.iter().take(w - x0).enumerate() {
                    for (j, &v) in values.iter().enumerate() {
                        out[first_row + j * hw + y * w + x0 + i] = v;
                    }
                }
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn run_avx2(&self, _: &[f32], _: (usize, usize), _: std::ops::Range<usize>, _: &mut [f32]) {
        unreachable!("DirectConv::new returns None off x86_64")
    }
}

/// Floats per padded input plane of a KxK convolution: `(h + 2b) x (w + 2b)`, b = K/2, plus
/// slack for the last tile's reads.
fn padded_plane<const K: usize>(h: usize, w: usize) -> usize {
    let b = K / 2;
    (h + 2 * b) * (w + 2 * b) + PX_TILE + 2 * b
}

/// Set to `off` to run the portable kernels (im2col + GEMM) even on a CPU with AVX2 and FMA: what
/// other CPUs and architectures run, so that path can be checked and timed on this one.
pub const SIMD_ENV: &str = "FERLITE_SIMD";

/// Whether the AVX2+FMA kernels run here: the CPU has both and [`SIMD_ENV`] is not `off`.
/// Decided once per process.
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let turned_off = std::env::var(SIMD_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("off"));
        if turned_off {
            tracing::info!("{SIMD_ENV}=off: portable kernels (im2col + GEMM) instead of AVX2+FMA");
        }
        !turned_off && cpu_has_avx2_fma()
    })
}

fn cpu_has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv::kernel_check::{assert_matches, random_case};
    use rand::SeedableRng;

    #[test]
    fn matches_im2col_and_gemm() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX2/FMA, the kernel is not used here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Widths where the 6-pixel tiles straddle rows differently, and the channel split of batch 1.
        for shape @ (cin, cout, h, w) in [(3, 16, 5, 7), (32, 32, 48, 48), (64, 128, 12, 12), (16, 48, 24, 24)] {
            let (x, weight, expected) = random_case(&mut rng, shape);
            let conv = DirectConv3x3::new(&weight, cin, cout).unwrap();
            let mut padded = Vec::new();
            conv.pad_input(&x, (h, w), &mut padded);
            assert_matches(shape, CO_TILE, &expected, |channels, out| conv.run(&padded, (h, w), channels, out));
        }
    }

    /// The 5x5 kernel (dlib's face detector) against a plain loop over taps.
    #[test]
    fn five_by_five_matches_a_plain_convolution() {
        use rand::Rng;
        if !available() {
            eprintln!("skipped: this CPU has no AVX2/FMA, the kernel is not used here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for (cin, cout, h, w) in [(3, 16, 4, 9), (32, 48, 13, 17)] {
            let x: Vec<f32> = (0..cin * h * w).map(|_| rng.random_range(-1.0..1.0)).collect();
            let weight: Vec<f32> = (0..cout * cin * 25).map(|_| rng.random_range(-1.0..1.0)).collect();
            let conv = DirectConv::<5>::new(&weight, cin, cout).unwrap();
            let mut padded = Vec::new();
            conv.pad_input(&x, (h, w), &mut padded);
            let mut out = vec![0.0; cout * h * w];
            conv.run(&padded, (h, w), 0..cout, &mut out);
            for (co, y, xx) in (0..cout).flat_map(|co| (0..h).flat_map(move |y| (0..w).map(move |xx| (co, y, xx)))) {
                let mut sum = 0.0f64;
                for (ci, ky, kx) in (0..cin).flat_map(|ci| (0..5).flat_map(move |ky| (0..5).map(move |kx| (ci, ky, kx)))) {
                    let (iy, ix) = (y as isize + ky as isize - 2, xx as isize + kx as isize - 2);
                    if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                        sum += (weight[((co * cin + ci) * 5 + ky) * 5 + kx] * x[(ci * h + iy as usize) * w + ix as usize]) as f64;
                    }
                }
                let got = out[(co * h + y) * w + xx] as f64;
                assert!((got - sum).abs() < 1e-4 * (1.0 + sum.abs()), "{co} {y} {xx}: {got} vs {sum}");
            }
        }
    }
}
