//! 3x3 convolution (stride 1, padding 1) by Winograd F(4x4, 3x3) with AVX2+FMA, for inference and
//! for the training step's forward pass and input gradient ([`super::conv::ConvAlgorithm`]).
//!
//! Each 4x4 block of output pixels ("tile") comes from a 6x6 patch of the input. Transformed into
//! the Winograd domain (`V = Bᵀ d B`, `U = G g Gᵀ`), the convolution becomes 36 independent
//! products `M[p] = Σ_ci U[p][co][ci] · V[p][ci]`, and `Aᵀ M A` gives the 16 outputs: 36
//! multiplications per tile and channel pair instead of 144 (4x fewer). The products run in the
//! same register tile as [`DirectConv3x3`](super::direct_conv::DirectConv3x3): 6 tiles x 16
//! output channels in twelve registers, the inner loop walking input channels.
//!
//! The input is transformed once per layer (shared by the threads that split the output channels),
//! 8 channels per register: a channels-last copy makes each patch value one vector load, and the
//! transformed values are stored channels-contiguous, `[tile group][36][6 tiles][cin]`, one vector
//! store each. Then, for every 16 output channels, each of the 36 weight matrices (2-8 KB, kept in
//! L1) meets every group of tiles, and the products are turned into output pixels.
//!
//! The transforms are Lavin & Gray's (2016) with interpolation points 0, ±1, ±2, ∞; in f32 they
//! agree with direct convolution to about 1e-5 relative (`tests`).
//!
//! [`Precision::Bf16`] (inference only, CPUs with AVX-512 BF16) rounds the transformed weights and
//! inputs to bfloat16 and multiplies them with [`super::bf16`]'s kernel, twice the
//! multiply-adds per instruction; sums, transforms and outputs stay f32. The rounding (8
//! significant bits) moves outputs by about 1e-2 relative.

use super::bf16::{self, for_row_count};
use super::Precision;
use rayon::prelude::*;
use std::ops::Range;

pub mod weight_gradient;

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
// The products' register tile is bf16's: the same blocks of output channels and groups of tiles.
const _: () = assert!(CO_TILE == bf16::COLUMNS && TILE_GROUP == bf16::ROWS);

/// `G` of F(4x4, 3x3): turns a 3-tap filter into 6 Winograd-domain values.
const G: [[f64; 3]; A] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// A 3x3 convolution's weights in the Winograd domain.
#[derive(Clone, Debug)]
pub struct Winograd3x3 {
    cin: usize,
    cout: usize,
    packed: Packed,
}

/// The transformed weights in the products' number format.
#[derive(Clone, Debug)]
enum Packed {
    /// `[cout / 16][36][cin][16]`.
    F32(Vec<f32>),
    /// bfloat16 bits, each pair of input channels side by side as `vdpbf16ps` takes them:
    /// `[cout / 16][36][cin / 2][16][2]`.
    Bf16(Vec<u16>),
}

thread_local! {
    /// Each thread's buffer for the Winograd-domain products of one layer's tiles (up to ~330 KB),
    /// kept between calls: [`Winograd3x3::run`] runs on several threads at once for batch 1.
    static PRODUCTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Tile grid of an `h x w` output: `(rows, columns)` of 4x4 tiles.
fn tile_grid((h, w): (usize, usize)) -> (usize, usize) {
    (h.div_ceil(M), w.div_ceil(M))
}

impl Winograd3x3 {
    /// Transforms `weight` `[cout, cin, 3, 3]` for f32 products; `None` when the CPU lacks
    /// AVX2/FMA, `cout` is not a multiple of 16 or `cin` not a multiple of 8 (the caller keeps
    /// another kernel).
    pub fn new(weight: &[f32], cin: usize, cout: usize) -> Option<Self> {
        if !super::direct_conv::available() || !cout.is_multiple_of(CO_TILE) || !cin.is_multiple_of(CI_LANES) || weight.len() != cout * cin * 9 {
            return None;
        }
        let mut packed = vec![0.0; P * cout * cin];
        // Blocks of 16 output channels in parallel: training transforms every step's weights.
        packed.par_chunks_mut(P * cin * CO_TILE).enumerate().for_each(|(block, packed)| {
            for co in block * CO_TILE..(block + 1) * CO_TILE {
                for ci in 0..cin {
                    let g = &weight[(co * cin + ci) * 9..][..9];
                    // U = G g Gᵀ, in f64 so the transform adds no rounding of its own.
                    let gg: [[f64; 3]; A] = std::array::from_fn(|i| std::array::from_fn(|c| (0..3).map(|k| G[i][k] * g[k * 3 + c] as f64).sum()));
                    for i in 0..A {
                        for j in 0..A {
                            let u: f64 = (0..3).map(|k| gg[i][k] * G[j][k]).sum();
                            packed[((i * A + j) * cin + ci) * CO_TILE + co % CO_TILE] = u as f32;
                        }
                    }
                }
            }
        });
        Some(Winograd3x3 { cin, cout, packed: Packed::F32(packed) })
    }

    /// As [`new`](Self::new), with products in `precision`; `None` also for
    /// [`Precision::Bf16`] on a CPU without it ([`bf16::available`]), and for int8.
    pub fn with_precision(weight: &[f32], cin: usize, cout: usize, precision: Precision) -> Option<Self> {
        Self::new(weight, cin, cout)?.in_precision(precision)
    }

    /// These weights with products in `precision`, derived from the transform already made
    /// rather than transforming again (f32 to bfloat16 is a rounding); `None` for bfloat16 on a
    /// CPU without it, and for f32 from bfloat16 (the rounding cannot be undone: transform anew).
    pub fn in_precision(self, precision: Precision) -> Option<Self> {
        match (self.packed, precision) {
            (packed @ Packed::F32(_), Precision::F32) | (packed @ Packed::Bf16(_), Precision::Bf16) => Some(Winograd3x3 { packed, ..self }),
            (Packed::F32(packed), Precision::Bf16) => {
                bf16::available().then(|| Winograd3x3 { packed: Packed::Bf16(bf16::interleave_pairs(&packed, self.cin)), ..self })
            }
            (Packed::Bf16(_), Precision::F32) => None,
            // int8 has its own kernels (`crate::int8`), not Winograd's.
            (_, Precision::Int8) => None,
        }
    }

    pub fn precision(&self) -> Precision {
        match self.packed {
            Packed::F32(_) => Precision::F32,
            Packed::Bf16(_) => Precision::Bf16,
        }
    }

    pub fn cin(&self) -> usize {
        self.cin
    }

    pub fn cout(&self) -> usize {
        self.cout
    }

    /// Output channels come in blocks of this many (see [`run`](Self::run)).
    pub const CHANNEL_BLOCK: usize = CO_TILE;

    /// Transforms `x` `[cin, h, w]` into the Winograd domain, into `v` (laid out
    /// `[tile group][36][6 tiles][cin]`), using `scratch` for a zero-bordered channels-last copy.
    /// For [`Precision::Bf16`], `v` holds the values' bfloat16 bits, two to each `f32` slot (half
    /// the length): only [`run`](Self::run) reads it.
    pub fn transform_input(&self, x: &[f32], (h, w): (usize, usize), scratch: &mut Vec<f32>, v: &mut Vec<f32>) {
        assert_eq!(x.len(), self.cin * h * w);
        let (grid, pw) = padded_channels_last(x, self.cin, (h, w), scratch);
        // Slots of the last group past the last tile are never read (`run` multiplies only tiles).
        v.resize(self.prepared_len(grid.0 * grid.1), 0.0);
        // SAFETY: AVX2 and FMA are present (`padded_channels_last` checked); reads stay inside
        // `scratch` (a tile's patch rows `4 ty ..= 4 ty + 5 < ph`, columns `< pw`) and writes
        // inside `v` (sized above).
        unsafe { self.transform_input_avx2(scratch, grid, pw, v) }
    }

    /// `f32` slots of [`transform_input`](Self::transform_input)'s output for `tiles` tiles.
    fn prepared_len(&self, tiles: usize) -> usize {
        let values = tiles.div_ceil(TILE_GROUP) * P * TILE_GROUP * self.cin;
        match self.packed {
            Packed::F32(_) => values,
            // Two bfloat16 values to a slot.
            Packed::Bf16(_) => values / 2,
        }
    }

    /// Output channels `channels` (start and length multiples of 16) of the convolution of the
    /// input that [`transform_input`](Self::transform_input) prepared, without bias, into `out`
    /// `[channels.len(), h * w]`.
    pub fn run(&self, v: &[f32], (h, w): (usize, usize), channels: Range<usize>, out: &mut [f32]) {
        assert!(channels.start.is_multiple_of(CO_TILE) && channels.end <= self.cout && channels.len().is_multiple_of(CO_TILE));
        let (th, tw) = tile_grid((h, w));
        assert_eq!(v.len(), self.prepared_len(th * tw));
        assert_eq!(out.len(), channels.len() * h * w);
        assert!(available());
        PRODUCTS.with_borrow_mut(|products| {
            products.resize((th * tw).div_ceil(TILE_GROUP) * TILE_GROUP * P * CO_TILE, 0.0);
            // SAFETY: AVX2 and FMA are present (checked above); `v` and `packed` are read within
            // the lengths asserted above, `products` within its size, and output pixels are
            // written only inside `h x w`.
            unsafe { self.run_avx2(v, (h, w), channels, products, out) }
        })
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn transform_input_avx2(&self, scratch: &[f32], grid: (usize, usize), pw: usize, v: &mut [f32]) {
        match self.packed {
            Packed::F32(_) => transform_tiles_f32(scratch, self.cin, grid, pw, v.as_mut_ptr()),
            // `v`'s f32 slots hold bfloat16 pairs (see `transform_input`).
            Packed::Bf16(_) => transform_tiles_bf16(scratch, self.cin, grid, pw, v.as_mut_ptr().cast()),
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(&self, v: &[f32], (h, w): (usize, usize), channels: Range<usize>, products: &mut [f32], out: &mut [f32]) {
        use std::arch::x86_64::*;
        let cin = self.cin;
        let (th, tw) = tile_grid((h, w));
        let tiles = th * tw;
        let groups = tiles.div_ceil(TILE_GROUP);
        let hw = h * w;
        let mut lanes = [0.0f32; 8];
        for block in channels.start / CO_TILE..channels.end / CO_TILE {
            let first_row = (block * CO_TILE - channels.start) * hw;
            // The 36 products of every tile, `[36][tile][16 channels]`.
            let block_weights = block * P * cin * CO_TILE..(block + 1) * P * cin * CO_TILE;
            match &self.packed {
                Packed::F32(packed) => multiply_block_f32(packed[block_weights].as_ptr(), v.as_ptr(), cin, tiles, products.as_mut_ptr()),
                // `v`'s f32 slots hold bfloat16 pairs (see `transform_input`).
                Packed::Bf16(packed) => multiply_block_bf16(packed[block_weights].as_ptr(), v.as_ptr().cast(), cin, tiles, products.as_mut_ptr()),
            }
            // Aᵀ M A for each tile, 8 channels at a time; pixels past the edge dropped.
            for tile in 0..tiles {
                let (y0, x0) = (tile / tw * M, tile % tw * M);
                for half in 0..2 {
                    // Plain loops rather than closures, as in `transform_tiles`.
                    let mut columns = [[_mm256_setzero_ps(); M]; A];
                    for (j, column) in columns.iter_mut().enumerate() {
                        let mut m = [_mm256_setzero_ps(); A];
                        for (i, m) in m.iter_mut().enumerate() {
                            *m = _mm256_loadu_ps(products.as_ptr().add(((i * A + j) * groups * TILE_GROUP + tile) * CO_TILE + half * 8));
                        }
                        *column = output_transform(m);
                    }
                    let mut rows = [[_mm256_setzero_ps(); M]; M];
                    for (r, row) in rows.iter_mut().enumerate() {
                        let mut m = [_mm256_setzero_ps(); A];
                        for (j, m) in m.iter_mut().enumerate() {
                            *m = columns[j][r];
                        }
                        *row = output_transform(m);
                    }
                    for (r, row) in rows.iter().enumerate().take(h - y0) {
                        let pixel = first_row + half * 8 * hw + (y0 + r) * w + x0;
                        if w - x0 >= M {
                            // Four pixels of eight channels: transposed in registers, stored as
                            // four consecutive pixels of each channel's plane.
                            for (lane, pixels) in transpose_8x4(*row).iter().enumerate() {
                                _mm_storeu_ps(out[pixel + lane * hw..][..M].as_mut_ptr(), *pixels);
                            }
                            continue;
                        }
                        for (c, value) in row.iter().enumerate().take(w - x0) {
                            _mm256_storeu_ps(lanes.as_mut_ptr(), *value);
                            for (lane, &x) in lanes.iter().enumerate() {
                                out[pixel + c + lane * hw] = x;
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
    unsafe fn run_avx2(&self, _: &[f32], _: (usize, usize), _: Range<usize>, _: &mut [f32], _: &mut [f32]) {
        unreachable!("Winograd3x3::new returns None off x86_64")
    }
}

/// Copies `x` `[cin, h, w]` channels last into `scratch`, inside the convolution's one-pixel zero
/// border (zeros also out to the tile grid's edge): the input [`transform_tiles`] reads. Returns
/// the tile grid and the copy's row length in pixels. Panics without AVX2/FMA ([`available`]).
fn padded_channels_last(x: &[f32], cin: usize, (h, w): (usize, usize), scratch: &mut Vec<f32>) -> ((usize, usize), usize) {
    assert!(available());
    let (th, tw) = tile_grid((h, w));
    let (ph, pw) = (th * M + 2, tw * M + 2);
    // Only the border is cleared: the buffer is reused between layers.
    scratch.resize(ph * pw * cin, 0.0);
    let (top, rest) = scratch.split_at_mut(pw * cin);
    top.fill(0.0);
    let (interior, bottom) = rest.split_at_mut(h * pw * cin);
    bottom.fill(0.0);
    for row in interior.chunks_exact_mut(pw * cin) {
        row[..cin].fill(0.0);
        row[(w + 1) * cin..].fill(0.0);
    }
    // SAFETY: AVX2 is present (asserted above); reads stay inside `x` (8 planes of `h * w` from a
    // multiple of 8 below `cin`) and writes inside `interior` (pixel `x < w`, channels `< cin`).
    unsafe { to_channels_last(x, cin, (h, w), pw, interior) };
    ((th, tw), pw)
}

/// Transforms every tile's patch of the channels-last `scratch` into the Winograd domain and hands
/// each 8-channel vector to `store` with its place: `(p, tile, first channel)`, `p < 36`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn transform_tiles(scratch: &[f32], cin: usize, (th, tw): (usize, usize), pw: usize, mut store: impl FnMut(usize, usize, usize, std::arch::x86_64::__m256)) {
    use std::arch::x86_64::*;
    let src = scratch.as_ptr();
    for tile in 0..th * tw {
        let (ty, tx) = (tile / tw, tile % tw);
        for c0 in (0..cin).step_by(CI_LANES) {
            // Bᵀ d: columns of the patch, then (Bᵀ d) B: rows. Plain loops rather than closures
            // (`array::from_fn`): a closure LLVM leaves out of line costs a call per vector.
            let mut columns = [[_mm256_setzero_ps(); A]; A];
            for (c, column) in columns.iter_mut().enumerate() {
                let mut d = [_mm256_setzero_ps(); A];
                for (r, d) in d.iter_mut().enumerate() {
                    *d = _mm256_loadu_ps(src.add(((ty * M + r) * pw + tx * M + c) * cin + c0));
                }
                *column = input_transform(d);
            }
            #[allow(clippy::needless_range_loop)] // `i` picks the same row of every column
            for i in 0..A {
                let mut d = [_mm256_setzero_ps(); A];
                for (c, d) in d.iter_mut().enumerate() {
                    *d = columns[c][i];
                }
                for (j, value) in input_transform(d).iter().enumerate() {
                    store(i * A + j, tile, c0, *value);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transform_tiles_f32(scratch: &[f32], cin: usize, grid: (usize, usize), pw: usize, v: *mut f32) {
    use std::arch::x86_64::*;
    transform_tiles(scratch, cin, grid, pw, |p, tile, c0, value| _mm256_storeu_ps(v.add(grouped(p, tile, cin) + c0), value));
}

/// Where tile `tile`'s channel 0 of Winograd-domain value `p` goes in `[tile group][36][6 tiles][cin]`.
#[inline(always)]
fn grouped(p: usize, tile: usize, cin: usize) -> usize {
    ((tile / TILE_GROUP * P + p) * TILE_GROUP + tile % TILE_GROUP) * cin
}

/// As [`transform_tiles_f32`], each value rounded to bfloat16 (to nearest, ties to even).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512bf16")]
unsafe fn transform_tiles_bf16(scratch: &[f32], cin: usize, grid: (usize, usize), pw: usize, v: *mut u16) {
    use std::arch::x86_64::*;
    transform_tiles(scratch, cin, grid, pw, |p, tile, c0, value| {
        _mm_storeu_si128(v.add(grouped(p, tile, cin) + c0).cast(), std::mem::transmute::<__m128bh, __m128i>(_mm256_cvtneps_pbh(value)))
    });
}

/// The products `[36][tile][16]` of one block of 16 output channels (`u`: its 36 weight matrices
/// of `cin x 16`) with every tile of `x` (`[tile group][36][6 tiles][cin]`): one weight matrix at
/// a time (2-8 KB, stays in L1) against every group of tiles. `multiply(n, u, x, dst)` multiplies
/// the first `n` tiles of a group.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn multiply_block<E>(u: *const E, x: *const E, cin: usize, tiles: usize, products: *mut f32, multiply: impl Fn(usize, *const E, *const E, *mut f32)) {
    let groups = tiles.div_ceil(TILE_GROUP);
    for p in 0..P {
        let u = u.add(p * cin * CO_TILE);
        for group in 0..groups {
            let x = x.add((group * P + p) * TILE_GROUP * cin);
            let dst = products.add((p * groups * TILE_GROUP + group * TILE_GROUP) * CO_TILE);
            // Only the tiles there are: the last group of stage 3's 9 tiles holds 3.
            multiply((tiles - group * TILE_GROUP).min(TILE_GROUP), u, x, dst);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn multiply_block_f32(u: *const f32, x: *const f32, cin: usize, tiles: usize, products: *mut f32) {
    multiply_block(u, x, cin, tiles, products, |n, u, x, dst| for_row_count!(n, multiply_tiles(u, x, cin, dst)));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512bf16")]
unsafe fn multiply_block_bf16(u: *const u16, x: *const u16, cin: usize, tiles: usize, products: *mut f32) {
    multiply_block(u, x, cin, tiles, products, |n, u, x, dst| for_row_count!(n, bf16::multiply_tiles(u, x, cin, dst, CO_TILE)));
}

/// One Winograd-domain product for `T` tiles of a group (`x`, `[tile][cin]`) and 16 output channels
/// (`u`, `[cin][16]`), into `dst` `[tile][16]`: 2T accumulators, the inner loop over input channels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn multiply_tiles<const T: usize>(u: *const f32, x: *const f32, cin: usize, dst: *mut f32) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    for ci in 0..cin {
        let w = [_mm256_loadu_ps(u.add(ci * CO_TILE)), _mm256_loadu_ps(u.add(ci * CO_TILE + 8))];
        for (t, acc) in acc.iter_mut().enumerate() {
            let b = _mm256_broadcast_ss(&*x.add(t * cin + ci));
            acc[0] = _mm256_fmadd_ps(b, w[0], acc[0]);
            acc[1] = _mm256_fmadd_ps(b, w[1], acc[1]);
        }
    }
    for (t, acc) in acc.iter().enumerate() {
        _mm256_storeu_ps(dst.add(t * CO_TILE), acc[0]);
        _mm256_storeu_ps(dst.add(t * CO_TILE + 8), acc[1]);
    }
}

/// Copies `x` `[cin, h, w]` into the interior rows of a channels-last buffer (`pw` pixels a row,
/// the first and those past `w` left alone), 8 pixels x 8 channels per register transpose.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn to_channels_last(x: &[f32], cin: usize, (h, w): (usize, usize), pw: usize, interior: &mut [f32]) {
    use std::arch::x86_64::*;
    let hw = h * w;
    let (src, dst) = (x.as_ptr(), interior.as_mut_ptr());
    // Eight planes at a time, row by row: eight streams of reads the prefetcher follows (all
    // planes at once, row by row, were too many: a tenth of a training step waited on them).
    for c0 in (0..cin).step_by(CI_LANES) {
        for y in 0..h {
            let mut x0 = 0;
            while x0 + 8 <= w {
                // A plain loop rather than `array::from_fn`, as in `transform_tiles`.
                let mut rows = [_mm256_setzero_ps(); 8];
                for (k, row) in rows.iter_mut().enumerate() {
                    *row = _mm256_loadu_ps(src.add((c0 + k) * hw + y * w + x0));
                }
                for (j, pixel) in transpose_8x8(rows).iter().enumerate() {
                    _mm256_storeu_ps(dst.add((y * pw + x0 + j + 1) * cin + c0), *pixel);
                }
                x0 += 8;
            }
            for xx in x0..w {
                for k in 0..CI_LANES {
                    *dst.add((y * pw + xx + 1) * cin + c0 + k) = *src.add((c0 + k) * hw + y * w + xx);
                }
            }
        }
    }
}

/// Transposes an 8x8 block: lane `j` of `rows[k]` becomes lane `k` of the result's `j`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn transpose_8x8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    let t: [__m256; 8] = [
        _mm256_unpacklo_ps(r[0], r[1]),
        _mm256_unpackhi_ps(r[0], r[1]),
        _mm256_unpacklo_ps(r[2], r[3]),
        _mm256_unpackhi_ps(r[2], r[3]),
        _mm256_unpacklo_ps(r[4], r[5]),
        _mm256_unpackhi_ps(r[4], r[5]),
        _mm256_unpacklo_ps(r[6], r[7]),
        _mm256_unpackhi_ps(r[6], r[7]),
    ];
    let q: [__m256; 8] = [
        _mm256_shuffle_ps::<0x44>(t[0], t[2]),
        _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
        _mm256_shuffle_ps::<0x44>(t[1], t[3]),
        _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
        _mm256_shuffle_ps::<0x44>(t[4], t[6]),
        _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
        _mm256_shuffle_ps::<0x44>(t[5], t[7]),
        _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
    ];
    [
        _mm256_permute2f128_ps::<0x20>(q[0], q[4]),
        _mm256_permute2f128_ps::<0x20>(q[1], q[5]),
        _mm256_permute2f128_ps::<0x20>(q[2], q[6]),
        _mm256_permute2f128_ps::<0x20>(q[3], q[7]),
        _mm256_permute2f128_ps::<0x31>(q[0], q[4]),
        _mm256_permute2f128_ps::<0x31>(q[1], q[5]),
        _mm256_permute2f128_ps::<0x31>(q[2], q[6]),
        _mm256_permute2f128_ps::<0x31>(q[3], q[7]),
    ]
}

/// Four pixels x eight channels (`v[pixel]` holds the channels) to eight channels x four pixels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn transpose_8x4(v: [std::arch::x86_64::__m256; M]) -> [std::arch::x86_64::__m128; 8] {
    use std::arch::x86_64::*;
    // 4x4 transposes inside each 128-bit half: channels 0-3 in the low halves, 4-7 in the high.
    let (t0, t1) = (_mm256_unpacklo_ps(v[0], v[1]), _mm256_unpackhi_ps(v[0], v[1]));
    let (t2, t3) = (_mm256_unpacklo_ps(v[2], v[3]), _mm256_unpackhi_ps(v[2], v[3]));
    let r = [_mm256_shuffle_ps::<0x44>(t0, t2), _mm256_shuffle_ps::<0xEE>(t0, t2), _mm256_shuffle_ps::<0x44>(t1, t3), _mm256_shuffle_ps::<0xEE>(t1, t3)];
    std::array::from_fn(|lane| if lane < 4 { _mm256_castps256_ps128(r[lane]) } else { _mm256_extractf128_ps::<1>(r[lane - 4]) })
}

/// `Bᵀ d` for one column (or row) of 6 values, 8 lanes at a time:
/// `Bᵀ = [[4,0,-5,0,1,0], [0,-4,-4,1,1,0], [0,4,-4,-1,1,0], [0,-2,-1,2,1,0], [0,2,-1,-2,1,0], [0,4,0,-5,0,1]]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
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
#[target_feature(enable = "avx2,fma")]
#[inline]
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

/// `A d` for one column (or row) of a tile's 4 output gradients, `A` the transpose of
/// [`output_transform`]'s `Aᵀ`: the 6 Winograd-domain values they came from
/// ([`weight_gradient`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn output_gradient_transform(d: [std::arch::x86_64::__m256; M]) -> [std::arch::x86_64::__m256; A] {
    use std::arch::x86_64::*;
    let (even, odd) = (_mm256_add_ps(d[0], d[2]), _mm256_add_ps(d[1], d[3]));
    // d0 + 4 d2 and 2 d1 + 8 d3
    let even4 = _mm256_fmadd_ps(_mm256_set1_ps(4.0), d[2], d[0]);
    let odd8 = _mm256_mul_ps(_mm256_set1_ps(2.0), _mm256_fmadd_ps(_mm256_set1_ps(4.0), d[3], d[1]));
    [d[0], _mm256_add_ps(even, odd), _mm256_sub_ps(even, odd), _mm256_add_ps(even4, odd8), _mm256_sub_ps(even4, odd8), d[3]]
}

/// Whether this CPU runs the kernel (the same features as the direct kernel).
pub fn available() -> bool {
    super::direct_conv::available()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::conv::kernel_check::{assert_matches, assert_matches_within, random_case};
    use rand::SeedableRng;

    #[test]
    fn matches_im2col_and_gemm() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX2/FMA, the kernel is not used here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        // Sizes that are not multiples of the 4x4 tile, last groups of 1-5 tiles (4, 3, 1, 2, 5), the
        // paper's three stages, and the channel split of batch 1.
        for shape @ (cin, cout, h, w) in [(8, 16, 5, 7), (32, 32, 48, 48), (64, 128, 12, 12), (16, 48, 24, 24), (8, 32, 3, 3), (8, 16, 8, 3), (16, 16, 17, 4)] {
            let (x, weight, expected) = random_case(&mut rng, shape);
            let conv = Winograd3x3::new(&weight, cin, cout).unwrap();
            let (mut scratch, mut v) = (Vec::new(), Vec::new());
            conv.transform_input(&x, (h, w), &mut scratch, &mut v);
            assert_matches(shape, CO_TILE, &expected, |channels, out| conv.run(&v, (h, w), channels, out));
        }
    }

    #[test]
    fn bf16_products_match_im2col_and_gemm_to_their_rounding() {
        if !bf16::available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16, Precision::Bf16 is not used here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for shape @ (cin, cout, h, w) in [(8, 16, 5, 7), (32, 32, 48, 48), (64, 128, 12, 12), (128, 128, 12, 12), (16, 16, 17, 4)] {
            let (x, weight, expected) = random_case(&mut rng, shape);
            let conv = Winograd3x3::with_precision(&weight, cin, cout, Precision::Bf16).unwrap();
            let (mut scratch, mut v) = (Vec::new(), Vec::new());
            conv.transform_input(&x, (h, w), &mut scratch, &mut v);
            assert_matches_within(shape, CO_TILE, 0.15, &expected, |channels, out| conv.run(&v, (h, w), channels, out));
        }
    }

    #[test]
    fn bf16_kernel_computes_f32_products_of_rounded_operands() {
        if !bf16::available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16, Precision::Bf16 is not used here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for shape @ (cin, cout, h, w) in [(8, 16, 5, 7), (32, 32, 48, 48), (128, 128, 12, 12)] {
            let (x, weight, _) = random_case(&mut rng, shape);
            let round = |v: &mut [f32]| v.iter_mut().for_each(|v| *v = bf16::rounded(*v));
            // The f32 kernel on operands rounded beforehand.
            let mut emulated = Winograd3x3::new(&weight, cin, cout).unwrap();
            let Packed::F32(packed) = &mut emulated.packed else { unreachable!() };
            round(packed);
            let (mut scratch, mut v) = (Vec::new(), Vec::new());
            emulated.transform_input(&x, (h, w), &mut scratch, &mut v);
            round(&mut v);
            let mut expected = vec![0.0; cout * h * w];
            emulated.run(&v, (h, w), 0..cout, &mut expected);
            let conv = Winograd3x3::with_precision(&weight, cin, cout, Precision::Bf16).unwrap();
            conv.transform_input(&x, (h, w), &mut scratch, &mut v);
            assert_matches(shape, CO_TILE, &expected, |channels, out| conv.run(&v, (h, w), channels, out));
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

