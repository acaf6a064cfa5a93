//! bfloat16 matrix products for inference on CPUs with AVX-512 BF16 (`--precision bf16`).
//!
//! `vdpbf16ps` multiplies two pairs of bfloat16 values per f32 lane and adds both products to an
//! f32 sum, in the time an FMA does one multiply-add (docs/performance.md, 2026-11-27). Operands are
//! rounded to bfloat16 (8 significant bits); sums stay f32. The weights are packed once per layer
//! with each pair of rows side by side, `[k / 2][16][2]` per block of 16 columns, so one 256-bit
//! load holds 8 columns' pairs and a broadcast pair of the other operand meets them.
//!
//! Used by the classifier's Winograd products ([`super::winograd`]) and the face detector's
//! pointwise convolutions ([`crate::faces::ssd`]).

/// Columns per block of packed weights and per register tile: two 8-lane registers.
pub const COLUMNS: usize = 16;
/// Rows of the left operand per register tile.
pub const ROWS: usize = 6;

/// Whether this CPU runs [`Precision::Bf16`](super::Precision::Bf16): AVX-512 BF16 (AMD Zen 4 and later, Intel Cooper Lake
/// and Sapphire Rapids and later) besides AVX2/FMA, and `FERLITE_SIMD` is not `off`.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        super::direct_conv::available()
            && std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `x` rounded to bfloat16 (to nearest, ties to even, as `vcvtneps2bf16`); `x` is finite.
pub fn bits(x: f32) -> u16 {
    let bits = x.to_bits();
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// `x` rounded to bfloat16 and widened back to f32: what the products see (for tests).
#[cfg(test)]
pub(crate) fn rounded(x: f32) -> f32 {
    f32::from_bits((bits(x) as u32) << 16)
}

/// Matrices of `k x 16` f32 values, one after another, to bfloat16 with each pair of rows side by
/// side: `[..][k / 2][16][2]`. `k` is even.
pub fn interleave_pairs(blocks: &[f32], k: usize) -> Vec<u16> {
    assert!(k.is_multiple_of(2) && blocks.len().is_multiple_of(k * COLUMNS));
    let mut out = vec![0; blocks.len()];
    for (src, dst) in blocks.chunks_exact(k * COLUMNS).zip(out.chunks_exact_mut(k * COLUMNS)) {
        for row in 0..k {
            for col in 0..COLUMNS {
                dst[pair_index(row, col)] = bits(src[row * COLUMNS + col]);
            }
        }
    }
    out
}

/// Where value (`row`, `col`) of a `k x 16` block goes in its interleaved `[k / 2][16][2]` form.
fn pair_index(row: usize, col: usize) -> usize {
    ((row / 2) * COLUMNS + col) * 2 + row % 2
}

/// Calls `$kernel::<r>` for a register tile's row count `r` (1 to [`ROWS`]).
macro_rules! for_row_count {
    ($n:expr, $($kernel:ident)::+($($arg:expr),*)) => {
        match $n {
            1 => $($kernel)::+::<1>($($arg),*),
            2 => $($kernel)::+::<2>($($arg),*),
            3 => $($kernel)::+::<3>($($arg),*),
            4 => $($kernel)::+::<4>($($arg),*),
            5 => $($kernel)::+::<5>($($arg),*),
            _ => $($kernel)::+::<{ $crate::nn::bf16::ROWS }>($($arg),*),
        }
    };
}
pub(crate) use for_row_count;

/// A `k x n` right operand (`n` a multiple of 16, `k` even) packed for [`PackedMatrix::multiply`].
#[derive(Clone, Debug)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    /// `[n / 16][k / 2][16][2]`.
    data: Vec<u16>,
}

impl PackedMatrix {
    /// Packs row-major `values` `[k][n]`; `None` when the shape does not fit (the caller keeps f32).
    pub fn new(values: &[f32], k: usize, n: usize) -> Option<Self> {
        if !k.is_multiple_of(2) || !n.is_multiple_of(COLUMNS) || values.len() != k * n {
            return None;
        }
        let mut data = vec![0; k * n];
        for (row, values) in values.chunks_exact(n).enumerate() {
            for (col, &value) in values.iter().enumerate() {
                data[col / COLUMNS * k * COLUMNS + pair_index(row, col % COLUMNS)] = bits(value);
            }
        }
        Some(PackedMatrix { k, n, data })
    }

    /// `out` `[m][n]` = `a` `[m][k]` x this, `a` rounded to bfloat16 first (`scratch` holds it).
    pub fn multiply(&self, a: &[f32], out: &mut [f32], scratch: &mut Vec<u16>) {
        let (k, n) = (self.k, self.n);
        assert!(available(), "bfloat16 products need AVX-512 BF16");
        assert!(a.len().is_multiple_of(k) && out.len() == a.len() / k * n);
        let m = a.len() / k;
        scratch.resize(a.len(), 0);
        // SAFETY: the CPU has AVX-512 BF16 (asserted); every row tile reads `k` values of
        // `scratch` per row below `m` and writes 16 columns of `out` per row below `m`.
        unsafe {
            round_to_bf16(a, scratch);
            for block in 0..n / COLUMNS {
                let u = self.data.as_ptr().add(block * k * COLUMNS);
                for row in (0..m).step_by(ROWS) {
                    let (x, dst) = (scratch.as_ptr().add(row * k), out.as_mut_ptr().add(row * n + block * COLUMNS));
                    for_row_count!((m - row).min(ROWS), multiply_tiles(u, x, k, dst, n));
                }
            }
        }
    }
}


/// `dst[t][0..16]` (rows `dst_stride` apart) = `x[t][0..k]` (rows `k` apart) x `u` (`[k / 2][16][2]`)
/// for `T` rows: 2T accumulators, one `vdpbf16ps` per two values of `k` (a pair of `x` broadcast
/// against 8 columns' pairs of `u`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512bf16")]
#[inline]
pub(crate) unsafe fn multiply_tiles<const T: usize>(u: *const u16, x: *const u16, k: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm256_setzero_ps(); 2]; T];
    for pair in 0..k / 2 {
        let w: [__m256bh; 2] = [
            std::mem::transmute::<__m256i, __m256bh>(_mm256_loadu_si256(u.add(pair * COLUMNS * 2).cast())),
            std::mem::transmute::<__m256i, __m256bh>(_mm256_loadu_si256(u.add((pair * COLUMNS + 8) * 2).cast())),
        ];
        for (t, acc) in acc.iter_mut().enumerate() {
            let b: __m256bh = std::mem::transmute(_mm256_set1_epi32(x.add(t * k + 2 * pair).cast::<i32>().read_unaligned()));
            acc[0] = _mm256_dpbf16_ps(acc[0], b, w[0]);
            acc[1] = _mm256_dpbf16_ps(acc[1], b, w[1]);
        }
    }
    for (t, acc) in acc.iter().enumerate() {
        _mm256_storeu_ps(dst.add(t * dst_stride), acc[0]);
        _mm256_storeu_ps(dst.add(t * dst_stride + 8), acc[1]);
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn multiply_tiles<const T: usize>(_: *const u16, _: *const u16, _: usize, _: *mut f32, _: usize) {
    unreachable!("bf16::available() is false off x86_64")
}

/// `src` rounded to bfloat16 into `dst` (the same length), 16 values per instruction.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512vl,avx512bf16")]
unsafe fn round_to_bf16(src: &[f32], dst: &mut [u16]) {
    use std::arch::x86_64::*;
    let whole = src.len() / 16 * 16;
    for i in (0..whole).step_by(16) {
        let rounded = _mm512_cvtneps_pbh(_mm512_loadu_ps(src.as_ptr().add(i)));
        _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), std::mem::transmute::<__m256bh, __m256i>(rounded));
    }
    for i in whole..src.len() {
        dst[i] = bits(src[i]);
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn round_to_bf16(_: &[f32], _: &mut [u16]) {
    unreachable!("bf16::available() is false off x86_64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::gemm::{row_major, sgemm};
    use rand::{Rng, SeedableRng};

    #[test]
    fn rounds_to_nearest_even() {
        assert_eq!(bits(1.0), 0x3f80);
        assert_eq!(bits(f32::from_bits(0x3f80_8000)), 0x3f80, "a tie rounds to the even 0x3f80");
        assert_eq!(bits(f32::from_bits(0x3f81_8000)), 0x3f82, "a tie rounds to the even 0x3f82");
        assert_eq!(bits(f32::from_bits(0x3f80_8001)), 0x3f81, "above the tie rounds up");
        assert_eq!(bits(-2.0), 0xc000);
    }

    /// The packed product equals the f32 product of the operands rounded to bfloat16 (to f32
    /// rounding), for row counts that leave partial register tiles.
    #[test]
    fn packed_product_is_the_f32_product_of_rounded_operands() {
        if !available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let round = |v: &[f32]| -> Vec<f32> { v.iter().map(|&x| rounded(x)).collect() };
        for (m, k, n) in [(1, 2, 16), (7, 32, 32), (13, 64, 48), (256, 512, 128)] {
            let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
            let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut expected = vec![0.0; m * n];
            sgemm(m, k, n, &round(&a), row_major(k), &round(&b), row_major(n), 0.0, &mut expected, row_major(n));
            let mut got = vec![f32::NAN; m * n];
            PackedMatrix::new(&b, k, n).unwrap().multiply(&a, &mut got, &mut Vec::new());
            let worst = got.iter().zip(&expected).map(|(g, e)| (g - e).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5 * (k as f32).sqrt(), "{m}x{k}x{n}: max abs difference {worst}");
        }
        assert!(PackedMatrix::new(&[0.0; 3 * 16], 3, 16).is_none(), "k must be even");
        assert!(PackedMatrix::new(&[0.0; 2 * 12], 2, 12).is_none(), "n must be a multiple of 16");
    }
}
