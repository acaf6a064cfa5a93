//! 3x3 convolution (stride 1, padding 1) by Winograd F(4x4, 3x3) with AVX2+FMA, for inference.
//!
//! Each 4x4 block of output pixels ("tile") comes from a 6x6 patch of the input. Transformed into
//! the Winograd domain (`V = Bᵀ d B`, `U = G g Gᵀ`), the convolution becomes 36 independent
//! products `M[p] = Σ_ci U[p][co][ci] · V[p][ci]`, and `Aᵀ M A` gives the 16 outputs: 36
//! multiplications per tile and channel pair instead of 144 (4x fewer). The products run in the
//! same register tile as [`DirectConv3x3`](super::direct_conv::DirectConv3x3): 6 tiles x 16
//! output channels in twelve registers, the inner loop walking input channels.
//!
//! Memory order keeps each step's working set in cache: the input is transformed once per layer
//! (shared by the threads that split the output channels), then for every 16 output channels and
//! every group of 6 tiles the 36 products land in a 14 KB buffer that is turned into output pixels
//! at once.
//!
//! The transforms are Lavin & Gray's (2016) with interpolation points 0, ±1, ±2, ∞; in f32 they
//! agree with direct convolution to about 1e-5 relative (`tests`).

use std::ops::Range;

/// Output channels per register tile: two 8-lane registers.
const CO_TILE: usize = 16;
/// Tiles per register tile.
const TILE_GROUP: usize = 6;
/// Output pixels per tile side.
const M: usize = 4;
/// Input patch side (`M + 2`).
const A: usize = 6;
/// Winograd-domain values per tile (`A * A`).
const P: usize = A * A;
/// Input channels transformed together (one 8-lane register).
const CI_LANES: usize = 8;

/// `G` of F(4x4, 3x3): turns a 3-tap filter into 6 Winograd-domain values.
const G: [[f64; 3]; A] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// A 3x3 convolution's weights in the Winograd domain, packed `[cout / 16][36][cin][16]`.
#[derive(Clone, Debug)]
pub struct Winograd3x3 {
    cin: usize,
    cout: usize,
    packed: Vec<f32>,
}

/// Tile grid of an `h x w` output: `(rows, columns)` of 4x4 tiles.
fn tile_grid((h, w): (usize, usize)) -> (usize, usize) {
    (h.div_ceil(M), w.div_ceil(M))
}

impl Winograd3x3 {
    /// Transforms `weight` `[cout, cin, 3, 3]`; `None` when the CPU lacks AVX2/FMA, `cout` is not a
    /// multiple of 16 or `cin` not a multiple of 8 (the caller keeps another kernel).
    pub fn new(weight: &[f32], cin: usize, cout: usize) -> Option<Self> {
        if !super::direct_conv::available() || cout % CO_TILE != 0 || cin % CI_LANES != 0 || weight.len() != cout * cin * 9 {
            return None;
        }
        let mut packed = vec![0.0; P * cout * cin];
        for co in 0..cout {
            for ci in 0..cin {
                let g = &weight[(co * cin + ci) * 9..][..9];
                // U = G g Gᵀ, in f64 so the transform adds no rounding of its own.
                let gg: [[f64; 3]; A] = std::array::from_fn(|i| std::array::from_fn(|c| (0..3).map(|k| G[i][k] * g[k * 3 + c] as f64).sum()));
                for i in 0..A {
                    for j in 0..A {
                        let u: f64 = (0..3).map(|k| gg[i][k] * G[j][k]).sum();
                        packed[((co / CO_TILE * P + i * A + j) * cin + ci) * CO_TILE + co % CO_TILE] = u as f32;
                    }
                }
            }
        }
        Some(Winograd3x3 { cin, cout, packed })
    }

    /// Output channels come in blocks of this many (see [`run`](Self::run)).
    pub const CHANNEL_BLOCK: usize = CO_TILE;

    /// Transforms `x` `[cin, h, w]` into the Winograd domain, into `v` (laid out
    /// `[tile group][36][cin][6 tiles]`), using `scratch` for a zero-bordered channels-last copy.
    pub fn transform_input(&self, x: &[f32], (h, w): (usize, usize), scratch: &mut Vec<f32>, v: &mut Vec<f32>) {
        assert_eq!(x.len(), self.cin * h * w);
        let (th, tw) = tile_grid((h, w));
        let (ph, pw) = (th * M + 2, tw * M + 2);
        // Channels last, with the convolution's one-pixel zero border (and zeros to the tile grid's edge).
        scratch.clear();
        scratch.resize(ph * pw * self.cin, 0.0);
        for (ci, plane) in x.chunks_exact(h * w).enumerate() {
            for (y, row) in plane.chunks_exact(w).enumerate() {
                let dst = &mut scratch[((y + 1) * pw + 1) * self.cin + ci..];
                for (xx, &value) in row.iter().enumerate() {
                    dst[xx * self.cin] = value;
                }
            }
        }
        let groups = (th * tw).div_ceil(TILE_GROUP);
        v.clear();
        v.resize(groups * P * self.cin * TILE_GROUP, 0.0);
        assert!(available());
        // SAFETY: AVX2 and FMA are present (checked above); reads stay inside `scratch` (a tile's
        // patch rows `4 ty ..= 4 ty + 5 < ph`, columns `< pw`) and writes inside `v` (sized above).
        unsafe { self.transform_input_avx2(scratch, (th, tw), pw, v) }
    }

    /// Output channels `channels` (start and length multiples of 16) of the convolution of the
    /// input that [`transform_input`](Self::transform_input) prepared, without bias, into `out`
    /// `[channels.len(), h * w]`.
    pub fn run(&self, v: &[f32], (h, w): (usize, usize), channels: Range<usize>, out: &mut [f32]) {
        assert!(channels.start % CO_TILE == 0 && channels.end <= self.cout && channels.len() % CO_TILE == 0);
        let (th, tw) = tile_grid((h, w));
        assert_eq!(v.len(), (th * tw).div_ceil(TILE_GROUP) * P * self.cin * TILE_GROUP);
        assert_eq!(out.len(), channels.len() * h * w);
        assert!(available());
        // SAFETY: AVX2 and FMA are present (checked above); `v` and `packed` are read within the
        // lengths asserted above, and output pixels are written only inside `h x w`.
        unsafe { self.run_avx2(v, (h, w), channels, out) }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn transform_input_avx2(&self, scratch: &[f32], (th, tw): (usize, usize), pw: usize, v: &mut [f32]) {
        use std::arch::x86_64::*;
        let cin = self.cin;
        let src = scratch.as_ptr();
        let mut lanes = [0.0f32; CI_LANES];
        for tile in 0..th * tw {
            let (ty, tx) = (tile / tw, tile % tw);
            let (group, slot) = (tile / TILE_GROUP, tile % TILE_GROUP);
            let group_v = &mut v[group * P * cin * TILE_GROUP..][..P * cin * TILE_GROUP];
            for c0 in (0..cin).step_by(CI_LANES) {
                let at = |r: usize, c: usize| _mm256_loadu_ps(src.add(((ty * M + r) * pw + tx * M + c) * cin + c0));
                // Bᵀ d: columns of the patch, then (Bᵀ d) B: rows.
                let columns: [[__m256; A]; A] = std::array::from_fn(|c| input_transform(std::array::from_fn(|r| at(r, c))));
                for i in 0..A {
                    let row = input_transform(std::array::from_fn(|c| columns[c][i]));
                    for (j, value) in row.iter().enumerate() {
                        _mm256_storeu_ps(lanes.as_mut_ptr(), *value);
                        let dst = &mut group_v[((i * A + j) * cin + c0) * TILE_GROUP + slot..];
                        for (lane, &x) in lanes.iter().enumerate() {
                            dst[lane * TILE_GROUP] = x;
                        }
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, v: &[f32], (h, w): (usize, usize), channels: Range<usize>, out: &mut [f32]) {
        use std::arch::x86_64::*;
        let cin = self.cin;
        let (th, tw) = tile_grid((h, w));
        let tiles = th * tw;
        let hw = h * w;
        // The 36 products of one group of tiles: `[tile in group][36][16 channels]`.
        let mut products = vec![0.0f32; TILE_GROUP * P * CO_TILE];
        let mut lanes = [0.0f32; CO_TILE];
        for block in channels.start / CO_TILE..channels.end / CO_TILE {
            let weights = &self.packed[block * P * cin * CO_TILE..][..P * cin * CO_TILE];
            let first_row = (block * CO_TILE - channels.start) * hw;
            for group in 0..tiles.div_ceil(TILE_GROUP) {
                let group_v = &v[group * P * cin * TILE_GROUP..][..P * cin * TILE_GROUP];
                for p in 0..P {
                    let u = weights[p * cin * CO_TILE..].as_ptr();
                    let x = group_v[p * cin * TILE_GROUP..].as_ptr();
                    let mut acc = [[_mm256_setzero_ps(); 2]; TILE_GROUP];
                    for ci in 0..cin {
                        let w = [_mm256_loadu_ps(u.add(ci * CO_TILE)), _mm256_loadu_ps(u.add(ci * CO_TILE + 8))];
                        let xs = x.add(ci * TILE_GROUP);
                        for (t, acc) in acc.iter_mut().enumerate() {
                            let b = _mm256_broadcast_ss(&*xs.add(t));
                            acc[0] = _mm256_fmadd_ps(b, w[0], acc[0]);
                            acc[1] = _mm256_fmadd_ps(b, w[1], acc[1]);
                        }
                    }
                    for (t, acc) in acc.iter().enumerate() {
                        let dst = products.as_mut_ptr().add((t * P + p) * CO_TILE);
                        _mm256_storeu_ps(dst, acc[0]);
                        _mm256_storeu_ps(dst.add(8), acc[1]);
                    }
                }
                // Aᵀ M A for each tile of the group, 8 channels at a time; pixels past the edge dropped.
                for t in 0..TILE_GROUP.min(tiles - group * TILE_GROUP) {
                    let tile = group * TILE_GROUP + t;
                    let (y0, x0) = (tile / tw * M, tile % tw * M);
                    for half in 0..2 {
                        let m = |i: usize, j: usize| _mm256_loadu_ps(products.as_ptr().add((t * P + i * A + j) * CO_TILE + half * 8));
                        let columns: [[__m256; M]; A] = std::array::from_fn(|j| output_transform(std::array::from_fn(|i| m(i, j))));
                        let rows: [[__m256; M]; M] = std::array::from_fn(|r| output_transform(std::array::from_fn(|j| columns[j][r])));
                        for (r, row) in rows.iter().enumerate().take(h - y0) {
                            for (c, value) in row.iter().enumerate().take(w - x0) {
                                _mm256_storeu_ps(lanes.as_mut_ptr(), *value);
                                let pixel = first_row + half * 8 * hw + (y0 + r) * w + x0 + c;
                                for (lane, &x) in lanes[..8].iter().enumerate() {
                                    out[pixel + lane * hw] = x;
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn transform_input_avx2(&self, _: &[f32], _: (usize, usize), _: usize, _: &mut [f32]) {
        unreachable!("Winograd3x3::new returns None off x86_64")
    }

    #[cfg(not(target_arch = "x86_64"))]
    unsafe fn run_avx2(&self, _: &[f32], _: (usize, usize), _: Range<usize>, _: &mut [f32]) {
        unreachable!("Winograd3x3::new returns None off x86_64")
    }
}

/// `Bᵀ d` for one column (or row) of 6 values, 8 lanes at a time:
/// `Bᵀ = [[4,0,-5,0,1,0], [0,-4,-4,1,1,0], [0,4,-4,-1,1,0], [0,-2,-1,2,1,0], [0,2,-1,-2,1,0], [0,4,0,-5,0,1]]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn input_transform(d: [std::arch::x86_64::__m256; A]) -> [std::arch::x86_64::__m256; A] {
    use std::arch::x86_64::*;
    let (four, five, two) = (_mm256_set1_ps(4.0), _mm256_set1_ps(5.0), _mm256_set1_ps(2.0));
    let t0 = _mm256_fnmadd_ps(four, d[2], d[4]); // d4 - 4 d2
    let t1 = _mm256_fnmadd_ps(four, d[1], d[3]); // d3 - 4 d1
    let t2 = _mm256_sub_ps(d[4], d[2]);
    let t3 = _mm256_mul_ps(two, _mm256_sub_ps(d[3], d[1]));
    [
        _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4])),
        _mm256_add_ps(t0, t1),
        _mm256_sub_ps(t0, t1),
        _mm256_add_ps(t2, t3),
        _mm256_sub_ps(t2, t3),
        _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5])),
    ]
}

/// `Aᵀ m` for one column (or row) of 6 products:
/// `Aᵀ = [[1,1,1,1,1,0], [0,1,-1,2,-2,0], [0,1,1,4,4,0], [0,1,-1,8,-8,1]]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn output_transform(m: [std::arch::x86_64::__m256; A]) -> [std::arch::x86_64::__m256; M] {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_add_ps(m[1], m[2]), _mm256_sub_ps(m[1], m[2]));
    let (c, d) = (_mm256_add_ps(m[3], m[4]), _mm256_sub_ps(m[3], m[4]));
    [
        _mm256_add_ps(_mm256_add_ps(m[0], a), c),
        _mm256_fmadd_ps(_mm256_set1_ps(2.0), d, b),
        _mm256_fmadd_ps(_mm256_set1_ps(4.0), c, a),
        _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0), d, b), m[5]),
    ]
}

/// Whether this CPU runs the kernel (the same features as the direct kernel).
pub fn available() -> bool {
    super::direct_conv::available()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv::im2col_3x3;
    use crate::nn::gemm::{row_major, sgemm};
    use rand::{Rng, SeedableRng};

    #[test]
    fn matches_im2col_and_gemm() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX2/FMA, the kernel is not used here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Sizes that are not multiples of the 4x4 tile, a partial last group of tiles, the paper's
        // three stages, and the channel split of batch 1.
        for (cin, cout, h, w) in [(8, 16, 5, 7), (32, 32, 48, 48), (64, 128, 12, 12), (16, 48, 24, 24), (8, 32, 3, 3)] {
            let x: Vec<f32> = (0..cin * h * w).map(|_| rng.random_range(-1.0..1.0)).collect();
            let weight: Vec<f32> = (0..cout * cin * 9).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut cols = Vec::new();
            im2col_3x3(&x, cin, h, w, &mut cols);
            let mut expected = vec![0.0; cout * h * w];
            sgemm(cout, cin * 9, h * w, &weight, row_major(cin * 9), &cols, row_major(h * w), 0.0, &mut expected, row_major(h * w));
            let conv = Winograd3x3::new(&weight, cin, cout).unwrap();
            let (mut scratch, mut v) = (Vec::new(), Vec::new());
            conv.transform_input(&x, (h, w), &mut scratch, &mut v);
            let mut got = vec![f32::NAN; cout * h * w];
            let half = cout / 2 / CO_TILE * CO_TILE;
            let (low, high) = got.split_at_mut(half * h * w);
            conv.run(&v, (h, w), 0..half, low);
            conv.run(&v, (h, w), half..cout, high);
            assert!(got.iter().all(|v| v.is_finite()), "{cin}->{cout} at {h}x{w}: outputs left unwritten");
            let worst = got.iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            // Sums of 9 cin terms of size ~1: the typical output is ~sqrt(9 cin).
            assert!(worst < 1e-4 * (cin as f32 * 9.0).sqrt(), "{cin}->{cout} at {h}x{w}: max abs difference {worst}");
        }
    }

    #[test]
    fn refuses_shapes_it_cannot_tile() {
        let weight = vec![0.0; 16 * 3 * 9];
        assert!(Winograd3x3::new(&weight, 3, 16).is_none(), "cin 3 is not a multiple of 8");
        let weight = vec![0.0; 8 * 8 * 9];
        assert!(Winograd3x3::new(&weight, 8, 8).is_none(), "cout 8 is not a multiple of 16");
    }
}
