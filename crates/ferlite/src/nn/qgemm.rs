//! int8 convolution products for `--precision int8`: unsigned 8-bit activations times signed
//! 8-bit weights, summed exactly in i32, so every kernel gives the same integers.
//!
//! A convolution is an implicit GEMM over an activation map stored pixel-major (`[pixel][channel]`,
//! channels padded to a multiple of [`BLOCK`]) with a zero border for 3x3 kernels: the row of the
//! "im2col" matrix for output pixel `p` is, tap after tap, the `cin` bytes of input pixel
//! `p + offset[tap]`, read where they lie instead of being copied. Output channels are the vector
//! lanes; one broadcast of four activations meets a register of 16 channels' four weights.
//!
//! - AVX-512 VNNI: `vpdpbusd` multiplies 4 u8 x s8 pairs per i32 lane and adds them to the lane.
//!   Weights packed `[cout / 16][k / 4][16][4]`.
//! - AVX-VNNI (Intel client CPUs without AVX-512): the same instruction on 8 lanes, weights
//!   `[cout / 8][k / 4][8][4]`.
//! - AVX2: `vpmaddwd` on the same values widened to i16 (2 pairs per lane). `vpmaddubsw` would be
//!   twice as fast but saturates at 32,767 (255 x 127 x 2 does not fit), so its answers would
//!   differ from the VNNI kernel's. Weights packed `[cout / 8][k / 2][8][2]` as i16.

/// Output channels per packed block; activation maps pad their channels to a multiple of it.
pub const BLOCK: usize = 16;

/// The instructions the int8 kernels run on, fastest available first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Vnni512,
    AvxVnni,
    Avx2,
}

impl Isa {
    /// The best kernel for this CPU; `None` without AVX2 (or with `FERLITE_SIMD=off`).
    pub fn detect() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            if !super::direct_conv::available() {
                return None;
            }
            Some(if vnni512() {
                Isa::Vnni512
            } else if std::is_x86_feature_detected!("avxvnni") {
                Isa::AvxVnni
            } else {
                Isa::Avx2
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    /// The kernels this CPU can run, for tests that compare them.
    pub fn all_available() -> Vec<Isa> {
        #[cfg(target_arch = "x86_64")]
        if Isa::detect().is_some() {
            let mut all = vec![Isa::Avx2];
            if std::is_x86_feature_detected!("avxvnni") {
                all.push(Isa::AvxVnni);
            }
            if vnni512() {
                all.push(Isa::Vnni512);
            }
            return all;
        }
        vec![]
    }
}

#[cfg(target_arch = "x86_64")]
fn vnni512() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") && std::is_x86_feature_detected!("avx512vnni")
}

/// What becomes of each output's i32 sum `acc`: `v = acc * scale[co] + shift[co]` (one fused
/// multiply-add, the same in every kernel), then
#[derive(Debug)]
pub enum Epilogue<'a> {
    /// `v` rounded to the nearest integer (ties to even), clamped to 0..=255: the next layer's
    /// u8 input, ReLU included.
    U8(&'a mut [u8]),
    /// `v` plus `residual`, then ReLU if asked, as f32.
    F32 { out: &'a mut [f32], residual: Option<&'a [f32]>, relu: bool },
}

/// A convolution's int8 weights, packed for one [`Isa`], and each output channel's `scale` and
/// `shift` (see [`Epilogue`]).
#[derive(Clone, Debug)]
pub struct PackedWeights {
    isa: Isa,
    /// Input channels (a multiple of [`BLOCK`]) and taps (1 or 9): `k = taps * cin`.
    cin: usize,
    taps: usize,
    /// Output channels, a multiple of [`BLOCK`].
    cout: usize,
    packed_i8: Vec<i8>,
    packed_i16: Vec<i16>,
    scale: Vec<f32>,
    shift: Vec<f32>,
}

impl PackedWeights {
    /// `weights` `[cout][taps][cin]`; `cin` and `cout` multiples of [`BLOCK`]; `scale` and `shift`
    /// one per output channel.
    pub fn new(isa: Isa, weights: &[i8], cin: usize, taps: usize, cout: usize, scale: Vec<f32>, shift: Vec<f32>) -> Self {
        assert!(cin.is_multiple_of(BLOCK) && cout.is_multiple_of(BLOCK) && weights.len() == cout * taps * cin);
        assert!(scale.len() == cout && shift.len() == cout);
        let k = taps * cin;
        let (mut packed_i8, mut packed_i16) = (Vec::new(), Vec::new());
        match isa {
            Isa::Vnni512 | Isa::AvxVnni => {
                let lanes = if isa == Isa::Vnni512 { 16 } else { 8 };
                packed_i8 = vec![0; cout * k];
                for co in 0..cout {
                    for kk in 0..k {
                        packed_i8[((co / lanes * (k / 4) + kk / 4) * lanes + co % lanes) * 4 + kk % 4] = weights[co * k + kk];
                    }
                }
            }
            Isa::Avx2 => {
                packed_i16 = vec![0; cout * k];
                for co in 0..cout {
                    for kk in 0..k {
                        packed_i16[((co / 8 * (k / 2) + kk / 2) * 8 + co % 8) * 2 + kk % 2] = weights[co * k + kk] as i16;
                    }
                }
            }
        }
        PackedWeights { isa, cin, taps, cout, packed_i8, packed_i16, scale, shift }
    }

    pub fn cout(&self) -> usize {
        self.cout
    }

    /// Output pixels `p` in `0..pixels`, whose tap `t` reads input pixel `first + p + offsets[t]`
    /// of `input` (`[pixel][cin]` u8), into the epilogue's `[pixels][cout]` slices.
    pub fn run(&self, input: &[u8], first: usize, offsets: &[usize], pixels: usize, out: Epilogue) {
        assert_eq!(offsets.len(), self.taps);
        let furthest = offsets.iter().max().map_or(0, |m| first + pixels.saturating_sub(1) + m);
        assert!(pixels == 0 || (furthest + 1) * self.cin <= input.len(), "input too short for these offsets");
        let len = pixels * self.cout;
        match &out {
            Epilogue::U8(out) => assert!(out.len() >= len),
            Epilogue::F32 { out, residual, .. } => assert!(out.len() >= len && residual.is_none_or(|r| r.len() >= len)),
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has the instructions (an `Isa` is only made by `detect`, or in tests after
        // it), and the asserts above keep every read and write inside the slices.
        unsafe {
            match self.isa {
                Isa::Vnni512 => x86::run(self, input, first, offsets, pixels, out, &[(8, x86::tile_vnni512::<8>), (4, x86::tile_vnni512::<4>), (1, x86::tile_vnni512::<1>)]),
                // Eight 2x8-lane accumulators, half the 16 registers: tiles of 4 pixels.
                Isa::AvxVnni => x86::run(self, input, first, offsets, pixels, out, &[(4, x86::tile_avx_vnni::<4>), (1, x86::tile_avx_vnni::<1>)]),
                Isa::Avx2 => x86::run(self, input, first, offsets, pixels, out, &[(4, x86::tile_avx2::<4>), (1, x86::tile_avx2::<1>)]),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no int8 Isa off x86_64 ({first}, {pixels})")
    }
}

/// The sums of [`PackedWeights::run`] in plain Rust, `weights` `[cout][taps][cin]` unpacked
/// (for tests).
#[cfg(test)]
pub(crate) fn reference(weights: &[i8], cin: usize, cout: usize, input: &[u8], first: usize, offsets: &[usize], pixels: usize) -> Vec<i32> {
    let k = offsets.len() * cin;
    let mut out = vec![0; pixels * cout];
    for p in 0..pixels {
        for co in 0..cout {
            let mut sum = 0i32;
            for (t, off) in offsets.iter().enumerate() {
                let pixel = &input[(first + p + off) * cin..][..cin];
                sum += pixel.iter().zip(&weights[co * k + t * cin..][..cin]).map(|(&a, &w)| a as i32 * w as i32).sum::<i32>();
            }
            out[p * cout + co] = sum;
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Epilogue, PackedWeights};
    use std::arch::x86_64::*;

    /// A kernel for a tile of consecutive output pixels (all output channels).
    pub(super) type Tile = unsafe fn(&PackedWeights, &[u8], usize, &[usize], Destination);

    /// A row of `pixels` output pixels in tiles, the widest that fit first (`tiles`: pixels a
    /// tile, kernel; the last of width 1).
    pub(super) unsafe fn run(w: &PackedWeights, input: &[u8], first: usize, offsets: &[usize], pixels: usize, out: Epilogue, tiles: &[(usize, Tile)]) {
        let out = Destination::new(out);
        let mut p = 0;
        for &(width, tile) in tiles {
            while p + width <= pixels {
                tile(w, input, first + p, offsets, out.add(p * w.cout));
                p += width;
            }
        }
    }

    /// The epilogue's destination as pointers to output pixel 0 (the tiles move along it).
    #[derive(Clone, Copy)]
    pub(super) enum Destination {
        U8(*mut u8),
        F32 { out: *mut f32, residual: *const f32, relu: bool },
    }

    impl Destination {
        fn new(epilogue: Epilogue) -> Self {
            match epilogue {
                Epilogue::U8(out) => Destination::U8(out.as_mut_ptr()),
                Epilogue::F32 { out, residual, relu } => Destination::F32 { out: out.as_mut_ptr(), residual: residual.map_or(std::ptr::null(), |r| r.as_ptr()), relu },
            }
        }

        /// The same destination `n` values further on.
        unsafe fn add(self, n: usize) -> Self {
            match self {
                Destination::U8(out) => Destination::U8(out.add(n)),
                Destination::F32 { out, residual, relu } => Destination::F32 { out: out.add(n), residual: if residual.is_null() { residual } else { residual.add(n) }, relu },
            }
        }
    }

    /// `R` consecutive output pixels, all output channels, 32 at a time (then 16).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile_vnni512<const R: usize>(w: &PackedWeights, input: &[u8], first: usize, offsets: &[usize], out: Destination) {
        let (cin, cout) = (w.cin, w.cout);
        let quads = offsets.len() * cin / 4;
        let weights = w.packed_i8.as_ptr();
        let src = input.as_ptr();
        let mut j = 0;
        while j < cout {
            let two = j + 32 <= cout;
            let b0_at = weights.add(j / 16 * quads * 64);
            let b1_at = weights.add((j / 16 + 1) * quads * 64);
            let mut acc = [[_mm512_setzero_si512(); 2]; R];
            let mut q = 0;
            for &off in offsets {
                let pixel = src.add((first + off) * cin);
                for c in (0..cin).step_by(4) {
                    let b0 = _mm512_loadu_si512(b0_at.add(q * 64) as *const _);
                    if two {
                        let b1 = _mm512_loadu_si512(b1_at.add(q * 64) as *const _);
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let a = _mm512_set1_epi32((pixel.add(r * cin + c) as *const i32).read_unaligned());
                            acc[0] = _mm512_dpbusd_epi32(acc[0], a, b0);
                            acc[1] = _mm512_dpbusd_epi32(acc[1], a, b1);
                        }
                    } else {
                        for (r, acc) in acc.iter_mut().enumerate() {
                            let a = _mm512_set1_epi32((pixel.add(r * cin + c) as *const i32).read_unaligned());
                            acc[0] = _mm512_dpbusd_epi32(acc[0], a, b0);
                        }
                    }
                    q += 1;
                }
            }
            for block in 0..if two { 2 } else { 1 } {
                let channel = j + 16 * block;
                let scale = _mm512_loadu_ps(w.scale.as_ptr().add(channel));
                let shift = _mm512_loadu_ps(w.shift.as_ptr().add(channel));
                for (r, acc) in acc.iter().enumerate() {
                    let v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[block]), scale, shift);
                    match out.add(r * cout + channel) {
                        Destination::U8(out) => {
                            // Nearest, ties to even (the default rounding mode); u32 -> u8 saturates at 255.
                            let q = _mm512_max_epi32(_mm512_cvtps_epi32(v), _mm512_setzero_si512());
                            _mm_storeu_si128(out as *mut _, _mm512_cvtusepi32_epi8(q));
                        }
                        Destination::F32 { out, residual, relu } => {
                            let mut v = v;
                            if !residual.is_null() {
                                v = _mm512_add_ps(v, _mm512_loadu_ps(residual));
                            }
                            if relu {
                                v = _mm512_max_ps(v, _mm512_setzero_ps());
                            }
                            _mm512_storeu_ps(out, v);
                        }
                    }
                }
            }
            j += if two { 32 } else { 16 };
        }
    }

    /// `R` consecutive output pixels, all output channels, 16 at a time.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2<const R: usize>(w: &PackedWeights, input: &[u8], first: usize, offsets: &[usize], out: Destination) {
        let (cin, cout) = (w.cin, w.cout);
        let pairs = offsets.len() * cin / 2;
        let weights = w.packed_i16.as_ptr();
        let src = input.as_ptr();
        for j in (0..cout).step_by(16) {
            let b0_at = weights.add(j / 8 * pairs * 16);
            let b1_at = weights.add((j / 8 + 1) * pairs * 16);
            let mut acc = [[_mm256_setzero_si256(); 2]; R];
            let mut q = 0;
            for &off in offsets {
                let pixel = src.add((first + off) * cin);
                for c in (0..cin).step_by(2) {
                    let b0 = _mm256_loadu_si256(b0_at.add(q * 16) as *const _);
                    let b1 = _mm256_loadu_si256(b1_at.add(q * 16) as *const _);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let at = pixel.add(r * cin + c);
                        let a = _mm256_set1_epi32(*at as i32 | (*at.add(1) as i32) << 16);
                        acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(a, b0));
                        acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(a, b1));
                    }
                    q += 1;
                }
            }
            for block in 0..2 {
                for (r, acc) in acc.iter().enumerate() {
                    store_avx2(w, acc[block], j + 8 * block, out.add(r * cout + j + 8 * block));
                }
            }
        }
    }

    /// `R` consecutive output pixels, all output channels, 16 at a time.
    #[target_feature(enable = "avx2,fma,avxvnni")]
    pub(super) unsafe fn tile_avx_vnni<const R: usize>(w: &PackedWeights, input: &[u8], first: usize, offsets: &[usize], out: Destination) {
        let (cin, cout) = (w.cin, w.cout);
        let quads = offsets.len() * cin / 4;
        let weights = w.packed_i8.as_ptr();
        let src = input.as_ptr();
        for j in (0..cout).step_by(16) {
            let b0_at = weights.add(j / 8 * quads * 32);
            let b1_at = weights.add((j / 8 + 1) * quads * 32);
            let mut acc = [[_mm256_setzero_si256(); 2]; R];
            let mut q = 0;
            for &off in offsets {
                let pixel = src.add((first + off) * cin);
                for c in (0..cin).step_by(4) {
                    let b0 = _mm256_loadu_si256(b0_at.add(q * 32) as *const _);
                    let b1 = _mm256_loadu_si256(b1_at.add(q * 32) as *const _);
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let a = _mm256_set1_epi32((pixel.add(r * cin + c) as *const i32).read_unaligned());
                        acc[0] = _mm256_dpbusd_avx_epi32(acc[0], a, b0);
                        acc[1] = _mm256_dpbusd_avx_epi32(acc[1], a, b1);
                    }
                    q += 1;
                }
            }
            for block in 0..2 {
                for (r, acc) in acc.iter().enumerate() {
                    store_avx2(w, acc[block], j + 8 * block, out.add(r * cout + j + 8 * block));
                }
            }
        }
    }

    /// The epilogue of 8 channels' sums from `channel` on, into `out` (already at that pixel and
    /// channel).
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn store_avx2(w: &PackedWeights, acc: __m256i, channel: usize, out: Destination) {
        let scale = _mm256_loadu_ps(w.scale.as_ptr().add(channel));
        let shift = _mm256_loadu_ps(w.shift.as_ptr().add(channel));
        let v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), scale, shift);
        match out {
            Destination::U8(out) => {
                let q = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(v), _mm256_setzero_si256()), _mm256_set1_epi32(255));
                // Eight i32 in 0..=255 to eight bytes: each 128-bit half packs to its low 4 bytes.
                let bytes = _mm256_packus_epi16(_mm256_packus_epi32(q, q), _mm256_setzero_si256());
                (out as *mut i32).write_unaligned(_mm_cvtsi128_si32(_mm256_castsi256_si128(bytes)));
                (out.add(4) as *mut i32).write_unaligned(_mm_cvtsi128_si32(_mm256_extracti128_si256(bytes, 1)));
            }
            Destination::F32 { out, residual, relu } => {
                let mut v = v;
                if !residual.is_null() {
                    v = _mm256_add_ps(v, _mm256_loadu_ps(residual));
                }
                if relu {
                    v = _mm256_max_ps(v, _mm256_setzero_ps());
                }
                _mm256_storeu_ps(out, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every kernel this CPU has gives exactly the reference's sums and epilogues, at the extremes
    /// of the ranges too (255 x -127 everywhere would overflow 16-bit pair sums), for 3x3 taps over
    /// a padded map and for a 1x1, with pixel counts that leave partial tiles.
    #[test]
    fn kernels_give_the_reference_results_exactly() {
        let isas = Isa::all_available();
        if isas.is_empty() {
            eprintln!("skipped: this CPU has no AVX2, --precision int8 is not used here");
            return;
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (cin, cout, taps, extreme) in [(16, 16, 9, false), (32, 48, 9, false), (64, 32, 1, false), (128, 128, 9, true)] {
            // 13 pixels a row: a tile of 8, one of 4 and one of 1 on the AVX-512 kernel.
            let (h, w) = (5, 13);
            let stride = w + 2;
            let input: Vec<u8> = (0..(h + 2) * stride * cin).map(|_| if extreme { 255 } else { rng.random() }).collect();
            let weights: Vec<i8> = (0..cout * taps * cin).map(|_| if extreme { -127 } else { rng.random_range(-127..=127) }).collect();
            let offsets: Vec<usize> = if taps == 9 { (0..9).map(|t| t / 3 * stride + t % 3).collect() } else { vec![stride + 1] };
            // Scales that spread the sums over 0..=255 and beyond both ends, with exact halves among them.
            let scale: Vec<f32> = (0..cout).map(|_| rng.random_range(0.0005..0.004)).collect();
            let shift: Vec<f32> = (0..cout).map(|co| if co % 3 == 0 { 0.5 } else { rng.random_range(-40.0..120.0) }).collect();
            let residual: Vec<f32> = (0..w * cout).map(|_| rng.random_range(-30.0..30.0)).collect();
            for isa in &isas {
                let packed = PackedWeights::new(*isa, &weights, cin, taps, cout, scale.clone(), shift.clone());
                for y in 0..h {
                    let sums = reference(&weights, cin, cout, &input, y * stride, &offsets, w);
                    let value = |i: usize| (sums[i] as f32).mul_add(scale[i % cout], shift[i % cout]);
                    let mut bytes = vec![0u8; w * cout];
                    packed.run(&input, y * stride, &offsets, w, Epilogue::U8(&mut bytes));
                    let want: Vec<u8> = (0..w * cout).map(|i| value(i).round_ties_even().clamp(0.0, 255.0) as u8).collect();
                    assert_eq!(bytes, want, "{isa:?} u8, cin {cin} cout {cout} taps {taps} row {y}");
                    let mut floats = vec![0.0f32; w * cout];
                    packed.run(&input, y * stride, &offsets, w, Epilogue::F32 { out: &mut floats, residual: Some(&residual), relu: true });
                    let want: Vec<f32> = (0..w * cout).map(|i| (value(i) + residual[i]).max(0.0)).collect();
                    assert_eq!(floats, want, "{isa:?} f32, cin {cin} cout {cout} taps {taps} row {y}");
                    packed.run(&input, y * stride, &offsets, w, Epilogue::F32 { out: &mut floats, residual: None, relu: false });
                    assert_eq!(floats, (0..w * cout).map(value).collect::<Vec<_>>(), "{isa:?} plain f32");
                }
            }
        }
    }
}
