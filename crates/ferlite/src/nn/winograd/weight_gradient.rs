//! The weight gradient of a 3x3 convolution by Winograd F(4x4, 3x3), for training.
//!
//! The forward pass computes each 4x4 output tile as `Aᵀ [Σ_ci U[co][ci] ⊙ V[ci]] A` with
//! `U = G g Gᵀ` and `V = Bᵀ d B`. That is linear in `U`, so with `dM = A dY Aᵀ` (the 4x4 output
//! gradient of a tile taken back to the 36 Winograd-domain values) the weight gradient is
//! `dg[co][ci] = Gᵀ (Σ_tiles dM[co] ⊙ V[ci]) G`. The sum over tiles is, for each of the 36 values
//! `p`, one matrix product `dU[p] = dM[p]ᵀ · V[p]` (`[cout x tiles] · [tiles x cin]`), 36
//! multiplications per tile and channel pair where im2col's product takes 144: 4x fewer. `Gᵀ · G`
//! is applied once, after the sums of all images.

use super::{available, output_gradient_transform, padded_channels_last, tile_grid, to_channels_last, transform_tiles, A, CI_LANES, G, M, P};
use crate::nn::gemm::{row_major, sgemm};
use rayon::prelude::*;

/// Whether [`winograd_domain`] computes this convolution's weight gradient (the transforms work
/// on 8 channels at a time, input and output).
pub fn supports(cin: usize, cout: usize) -> bool {
    available() && cin.is_multiple_of(CI_LANES) && cout.is_multiple_of(CI_LANES)
}

/// The buffers of one [`winograd_domain`] call.
#[derive(Default)]
struct Buffers {
    scratch: Vec<f32>,
    /// `V`: the inputs in the Winograd domain, `[tile][36][cin]` (tiles of all images in turn;
    /// tile by tile, the stores run in sequence).
    inputs: Vec<f32>,
    /// `dM`: the output gradients in the Winograd domain, `[tile][36][cout]`.
    gradients: Vec<f32>,
}

thread_local! {
    /// Each thread's [`Buffers`], kept between calls as `Winograd3x3::run` keeps its products (a
    /// training step makes several calls per thread; a group of images' Winograd-domain copies
    /// run to a few MB).
    static BUFFERS: std::cell::RefCell<Buffers> = std::cell::RefCell::default();
}

/// The weight gradient of a 3x3 convolution (stride 1, padding 1) summed over `images` images, in
/// the Winograd domain (`dU`, `[36][cout][cin]`; [`to_weights`] gives `[cout, cin, 3, 3]`): `x`
/// `[images, cin, h, w]` is its input, `dy` `[images, cout, h, w]` the gradient of its output.
/// Sums of these over groups of images are the sum's. Panics unless [`supports`]`(cin, cout)`.
pub fn winograd_domain(x: &[f32], dy: &[f32], channels: (usize, usize), size: (usize, usize)) -> Vec<f32> {
    BUFFERS.with_borrow_mut(|buffers| winograd_domain_in(x, dy, channels, size, buffers))
}

fn winograd_domain_in(x: &[f32], dy: &[f32], (cin, cout): (usize, usize), (h, w): (usize, usize), buffers: &mut Buffers) -> Vec<f32> {
    assert!(supports(cin, cout), "Winograd weight gradient of {cin} -> {cout} channels on this CPU");
    let hw = h * w;
    let images = x.len() / (cin * hw);
    assert!(x.len() == images * cin * hw && dy.len() == images * cout * hw, "inputs and gradients of {images} images expected");
    let (th, tw) = tile_grid((h, w));
    let tiles = th * tw;
    let all_tiles = images * tiles;
    let Buffers { scratch, inputs, gradients } = buffers;
    inputs.resize(P * all_tiles * cin, 0.0);
    gradients.resize(P * all_tiles * cout, 0.0);
    for (image, (x_img, dy_img)) in x.chunks_exact(cin * hw).zip(dy.chunks_exact(cout * hw)).enumerate() {
        let first = image * tiles;
        let (grid, pw) = padded_channels_last(x_img, cin, (h, w), scratch);
        // SAFETY: AVX2 and FMA are present (`supports`); `transform_tiles` reads inside `scratch`
        // and hands out `p < 36`, `tile < tiles`, `c0 + 8 <= cin`: inside `inputs` as sized above.
        unsafe {
            use std::arch::x86_64::*;
            let v = inputs.as_mut_ptr();
            transform_tiles(scratch, cin, grid, pw, |p, tile, c0, value| _mm256_storeu_ps(v.add(((first + tile) * P + p) * cin + c0), value));
        }
        let pw = padded_output_gradient(dy_img, cout, (h, w), scratch);
        // SAFETY: as above; the tiles read rows `< 4 th` and columns `< pw` of `scratch`.
        unsafe { transform_gradient_tiles(scratch, cout, (th, tw), pw, gradients[first * P * cout..].as_mut_ptr()) };
    }
    let mut du = vec![0.0; P * cout * cin];
    for (p, du) in du.chunks_exact_mut(cout * cin).enumerate() {
        // dU[p][co][ci] = Σ_tile dM[tile][p][co] · V[tile][p][ci]: rows of both 36 values apart.
        let (dm, v) = (&gradients[p * cout..], &inputs[p * cin..]);
        sgemm(cout, all_tiles, cin, dm, (1, P * cout), v, (P * cin, 1), 0.0, du, row_major(cin));
    }
    du
}

/// `dg = Gᵀ dU G` for every channel pair of [`winograd_domain`]'s `du`: the weight gradient
/// `[cout, cin, 3, 3]`.
pub fn to_weights(du: &[f32]) -> Vec<f32> {
    let pairs = du.len() / P;
    assert_eq!(du.len(), P * pairs);
    // dg[ky][kx] = Σ_ij G[i][ky] G[j][kx] dU[i][j]; most of the 36 coefficients of each tap are 0.
    let taps: [Vec<(usize, f32)>; 9] = std::array::from_fn(|tap| {
        let (ky, kx) = (tap / 3, tap % 3);
        (0..P).map(|p| (p, (G[p / A][ky] * G[p % A][kx]) as f32)).filter(|&(_, c)| c != 0.0).collect()
    });
    let mut dw = vec![0.0; pairs * 9];
    // Eight pairs at a time, so that the sums vectorise.
    const LANES: usize = 8;
    dw.par_chunks_mut(LANES * 9).enumerate().for_each(|(chunk, dw)| {
        let lanes = dw.len() / 9;
        let first = chunk * LANES;
        for (tap, terms) in taps.iter().enumerate() {
            let mut sum = [0.0f32; LANES];
            for &(p, c) in terms {
                let du = &du[p * pairs + first..][..lanes];
                sum.iter_mut().zip(du).for_each(|(s, d)| *s += c * d);
            }
            for (lane, s) in sum.iter().take(lanes).enumerate() {
                dw[lane * 9 + tap] = *s;
            }
        }
    });
    dw
}

/// Copies `dy` `[cout, h, w]` channels last into `scratch`, zero out to the tile grid's edge (an
/// output past the image has no gradient), each row `pw` pixels from column 1 (`to_channels_last`
/// leaves column 0 for a border). Returns `pw`.
fn padded_output_gradient(dy: &[f32], cout: usize, (h, w): (usize, usize), scratch: &mut Vec<f32>) -> usize {
    let (th, tw) = tile_grid((h, w));
    let pw = tw * M + 1;
    scratch.resize(th * M * pw * cout, 0.0);
    // Only what the copy leaves is cleared (the buffer is reused): rows past `h`, and columns past
    // `w` (column 0 is never read).
    let (interior, below) = scratch.split_at_mut(h * pw * cout);
    below.fill(0.0);
    for row in interior.chunks_exact_mut(pw * cout) {
        row[(w + 1) * cout..].fill(0.0);
    }
    // SAFETY: AVX2 is present (`supports`); reads stay inside `dy` and writes inside `interior`
    // (pixel `x + 1 < pw`, channels `< cout`).
    unsafe { to_channels_last(dy, cout, (h, w), pw, interior) };
    pw
}

/// `A dY Aᵀ` of every 4x4 tile of the channels-last output gradient `scratch`, 8 channels per
/// register, stored at `dm[(tile * 36 + p) * cout + channel]`.
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_gradient_tiles(scratch: &[f32], cout: usize, (th, tw): (usize, usize), pw: usize, dm: *mut f32) {
    use std::arch::x86_64::*;
    let src = scratch.as_ptr();
    for tile in 0..th * tw {
        let (ty, tx) = (tile / tw, tile % tw);
        for c0 in (0..cout).step_by(CI_LANES) {
            // Plain loops rather than closures, as in `transform_tiles`.
            let mut columns = [[_mm256_setzero_ps(); A]; M];
            for (c, column) in columns.iter_mut().enumerate() {
                let mut d = [_mm256_setzero_ps(); M];
                for (r, d) in d.iter_mut().enumerate() {
                    *d = _mm256_loadu_ps(src.add(((ty * M + r) * pw + tx * M + c + 1) * cout + c0));
                }
                *column = output_gradient_transform(d);
            }
            #[allow(clippy::needless_range_loop)] // `i` picks the same row of every column
            for i in 0..A {
                let mut d = [_mm256_setzero_ps(); M];
                for (c, d) in d.iter_mut().enumerate() {
                    *d = columns[c][i];
                }
                for (j, value) in output_gradient_transform(d).iter().enumerate() {
                    _mm256_storeu_ps(dm.add((tile * P + i * A + j) * cout + c0), *value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv::im2col_3x3;
    use crate::nn::gemm::transposed;
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_im2col_and_gemm() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX2/FMA, the kernel is not used here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        // Partial tiles at the right and bottom (5x7, 17x4, 3x3) and the paper's three stages.
        for (images, cin, cout, h, w) in [(2, 8, 8, 5, 7), (3, 32, 32, 48, 48), (2, 32, 64, 24, 24), (4, 64, 128, 12, 12), (1, 16, 8, 17, 4), (2, 8, 16, 3, 3)] {
            let x: Vec<f32> = (0..images * cin * h * w).map(|_| rng.random_range(-1.0..1.0)).collect();
            let dy: Vec<f32> = (0..images * cout * h * w).map(|_| rng.random_range(-1.0..1.0)).collect();
            let (hw, k) = (h * w, cin * 9);
            let mut expected = vec![0.0f32; cout * k];
            let mut cols = Vec::new();
            for (x_img, dy_img) in x.chunks_exact(cin * hw).zip(dy.chunks_exact(cout * hw)) {
                im2col_3x3(x_img, cin, h, w, &mut cols);
                sgemm(cout, hw, k, dy_img, row_major(hw), &cols, transposed(hw), 1.0, &mut expected, row_major(k));
            }
            let got = to_weights(&winograd_domain(&x, &dy, (cin, cout), (h, w)));
            // Each entry sums images·h·w products of values of size ~1: typically ~sqrt of that.
            let typical = ((images * hw) as f32).sqrt();
            let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            eprintln!("{images} x {cin}->{cout} at {h}x{w}: max abs difference {:.2e} of a typical entry", worst / typical);
            assert!(worst < 1e-4 * typical, "{images} x {cin}->{cout} at {h}x{w}: weight gradient differs by {worst}");
        }
    }
}
