//! 2-D convolution, stride 1, "same" padding (3x3 pads 1, 1x1 pads 0), no bias (a batch norm follows).
//!
//! Forward and backward lower each image to a matrix product: `im2col` lays the input patches out
//! as a `[cin*k*k, h*w]` matrix, so `out = W[cout, cin*k*k] · cols`. With
//! [`ConvAlgorithm::Winograd`] the 3x3 output and input gradient (itself a 3x3 convolution of the
//! output gradient with the flipped, transposed kernel) go through [`Winograd3x3`] instead, and
//! with [`ConvAlgorithm::WinogradFull`] the weight gradient too ([`weight_gradient`]).

use super::gemm::{row_major, sgemm, transposed};
use super::params::{Init, Layout, Slot};
use super::winograd::weight_gradient;
use super::winograd::Winograd3x3;
use super::tensor::add_in_place;
use super::Tensor;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// How a [`Conv2d`] computes its 3x3 convolutions (a 1x1 convolution is always one matrix product).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum ConvAlgorithm {
    /// `im2col` and a matrix product for the output and both gradients: the reference, and how
    /// every run before this setting existed was trained.
    #[default]
    Im2col,
    /// Winograd F(4x4, 3x3) (AVX2+FMA) for the output and the input gradient, `im2col` for the
    /// weight gradient; `Im2col` wherever the CPU or the channel counts do not allow it. Agrees
    /// with `Im2col` to ~1e-5 relative, so runs differ from `Im2col` runs in the last bits.
    Winograd,
    /// As `Winograd`, and the weight gradient by Winograd too (4x fewer multiplications there;
    /// agrees with im2col's to ~1e-5 relative), where the channel counts are multiples of 8.
    WinogradFull,
}

impl ConvAlgorithm {
    /// The name `--conv-algorithm` and the config file use (`im2col`, `winograd`, `winograd-full`).
    pub fn flag_name(self) -> String {
        crate::choice::name_of(&self)
    }

    fn winograd_output(self) -> bool {
        matches!(self, ConvAlgorithm::Winograd | ConvAlgorithm::WinogradFull)
    }
}

/// Number of image groups whose weight gradients are computed in parallel and summed in order.
const GRAD_GROUPS: usize = 8;

#[derive(Clone, Debug)]
pub struct Conv2d {
    pub cin: usize,
    pub cout: usize,
    /// Kernel side: 1 or 3.
    pub kernel: usize,
    /// Weights `[cout, cin, kernel, kernel]`.
    pub weight: Slot,
    pub algorithm: ConvAlgorithm,
}

impl Conv2d {
    pub fn new(layout: &mut Layout, name: &str, cin: usize, cout: usize, kernel: usize) -> Self {
        assert!(kernel == 1 || kernel == 3, "only 1x1 and 3x3 convolutions are supported");
        let fan_in = cin * kernel * kernel;
        let weight = layout.alloc(format!("{name}.weight"), &[cout, cin, kernel, kernel], Init::HeNormal { fan_in }, true);
        Conv2d { cin, cout, kernel, weight, algorithm: ConvAlgorithm::Im2col }
    }

    /// The Winograd form of this convolution's weights `[cout, cin, 3, 3]`, when it is used.
    fn winograd(&self, weight: &[f32]) -> Option<Winograd3x3> {
        (self.algorithm.winograd_output() && self.kernel == 3).then(|| Winograd3x3::new(weight, self.cin, self.cout)).flatten()
    }

    /// The Winograd form of the input gradient's convolution: the kernel flipped in space with
    /// input and output channels swapped, `[cin, cout, 3, 3]`.
    fn winograd_transposed(&self, weight: &[f32]) -> Option<Winograd3x3> {
        if !self.algorithm.winograd_output() || self.kernel != 3 {
            return None;
        }
        let mut flipped = vec![0.0; weight.len()];
        for (co, filters) in weight.chunks_exact(self.cin * 9).enumerate() {
            for (ci, taps) in filters.chunks_exact(9).enumerate() {
                for (k, &tap) in taps.iter().enumerate() {
                    flipped[(ci * self.cout + co) * 9 + 8 - k] = tap;
                }
            }
        }
        Winograd3x3::new(&flipped, self.cout, self.cin)
    }

    /// Whether the weight gradient goes through [`weight_gradient`] (each group of images then
    /// sums it in the Winograd domain).
    fn winograd_weight_gradient(&self) -> bool {
        self.algorithm == ConvAlgorithm::WinogradFull && self.kernel == 3 && weight_gradient::supports(self.cin, self.cout)
    }

    fn patch_len(&self) -> usize {
        self.cin * self.kernel * self.kernel
    }

    /// Multiply-adds per image for an `h x w` input.
    pub fn mult_adds(&self, h: usize, w: usize) -> usize {
        self.cout * self.patch_len() * h * w
    }

    pub fn forward(&self, params: &[f32], x: &Tensor) -> Tensor {
        let [n, cin, h, w] = x.shape;
        assert_eq!(cin, self.cin, "conv expects {} input channels, got {cin}", self.cin);
        let hw = h * w;
        let weight = self.weight.of(params);
        let mut out = Tensor::zeros([n, self.cout, h, w]);
        if let Some(winograd) = self.winograd(weight) {
            winograd_each(&winograd, &x.data, (h, w), &mut out.data);
            return out;
        }
        out.data
            .par_chunks_mut(self.cout * hw)
            .zip(x.data.par_chunks(cin * hw))
            .for_each_init(Vec::new, |cols, (out_img, x_img)| {
                let cols = self.lower(x_img, h, w, cols);
                sgemm(self.cout, self.patch_len(), hw, weight, row_major(self.patch_len()), cols, row_major(hw), 0.0, out_img, row_major(hw));
            });
        out
    }

    /// Adds the weight gradient into `grads` and returns the input gradient (unless `need_input_grad`
    /// is false, for the first layer, where it would be discarded).
    pub fn backward(&self, params: &[f32], x: &Tensor, dy: &Tensor, grads: &mut [f32], need_input_grad: bool) -> Option<Tensor> {
        let [n, cin, h, w] = x.shape;
        let hw = h * w;
        let k = self.patch_len();
        let weight = self.weight.of(params);
        let mut dx = need_input_grad.then(|| Tensor::zeros(x.shape));
        // With Winograd the input gradient is a convolution of its own, done here for all images;
        // the groups below then compute only weight gradients.
        let dx_winograd = if need_input_grad { self.winograd_transposed(weight) } else { None };
        if let (Some(dx), Some(winograd)) = (dx.as_mut(), &dx_winograd) {
            winograd_each(winograd, &dy.data, (h, w), &mut dx.data);
        }
        // Images are split into a fixed number of groups whose weight gradients are summed in
        // order, so the result does not depend on the thread count or scheduling (a resumed run
        // reproduces an uninterrupted one bit for bit).
        let group = n.div_ceil(GRAD_GROUPS).max(1);
        let winograd_weights = self.winograd_weight_gradient();
        let group_grad = |g: usize, mut dx_group: Option<&mut [f32]>| {
            let images = g * group..((g + 1) * group).min(n);
            let mut dw = if winograd_weights {
                let (x_group, dy_group) = (&x.data[images.start * cin * hw..images.end * cin * hw], &dy.data[images.start * self.cout * hw..images.end * self.cout * hw]);
                weight_gradient::winograd_domain(x_group, dy_group, (cin, self.cout), (h, w))
            } else {
                vec![0.0f32; self.cout * k]
            };
            let (mut cols, mut dcols) = (Vec::new(), Vec::new());
            for i in images.clone() {
                let x_img = &x.data[i * cin * hw..(i + 1) * cin * hw];
                let dy_img = &dy.data[i * self.cout * hw..(i + 1) * self.cout * hw];
                if !winograd_weights {
                    let patches = self.lower(x_img, h, w, &mut cols);
                    // dW[cout, k] += dY[cout, hw] · cols^T[hw, k]
                    sgemm(self.cout, hw, k, dy_img, row_major(hw), patches, transposed(hw), 1.0, &mut dw, row_major(k));
                }
                let Some(dx_group) = dx_group.as_deref_mut() else { continue };
                let dx_img = &mut dx_group[(i - images.start) * cin * hw..][..cin * hw];
                if self.kernel == 1 {
                    // dX[cin, hw] = W^T[cin, cout] · dY[cout, hw]
                    sgemm(cin, self.cout, hw, weight, transposed(cin), dy_img, row_major(hw), 0.0, dx_img, row_major(hw));
                } else {
                    dcols.resize(k * hw, 0.0);
                    sgemm(k, self.cout, hw, weight, transposed(k), dy_img, row_major(hw), 0.0, &mut dcols, row_major(hw));
                    col2im_3x3(&dcols, cin, h, w, dx_img);
                }
            }
            dw
        };
        let partials: Vec<Vec<f32>> = match dx.as_mut().filter(|_| dx_winograd.is_none()) {
            Some(dx) => dx.data.par_chunks_mut(group * cin * hw).enumerate().map(|(g, d)| group_grad(g, Some(d))).collect(),
            None => (0..n.div_ceil(group)).into_par_iter().map(|g| group_grad(g, None)).collect(),
        };
        let mut dw = sum_in_order(partials);
        if winograd_weights {
            dw = weight_gradient::to_weights(&dw);
        }
        add_in_place(self.weight.of_mut(grads), &dw);
        dx
    }

    /// The patch matrix of one image: the image itself for 1x1, `im2col` into `buf` for 3x3.
    fn lower<'a>(&self, x_img: &'a [f32], h: usize, w: usize, buf: &'a mut Vec<f32>) -> &'a [f32] {
        if self.kernel == 1 {
            x_img
        } else {
            im2col_3x3(x_img, self.cin, h, w, buf);
            buf
        }
    }
}

/// Test support for the 3x3 kernels ([`super::direct_conv`], [`super::winograd`]): a random case
/// with its im2col + GEMM result, and the check that a kernel's output matches it.
#[cfg(test)]
pub(crate) mod kernel_check {
    use super::super::gemm::{row_major, sgemm};
    use rand::Rng;

    /// Input `[cin, h, w]`, weights `[cout, cin, 3, 3]` (uniform in ±1) and their convolution.
    pub fn random_case(rng: &mut impl Rng, (cin, cout, h, w): (usize, usize, usize, usize)) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x: Vec<f32> = (0..cin * h * w).map(|_| rng.random_range(-1.0..1.0)).collect();
        let weight: Vec<f32> = (0..cout * cin * 9).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut cols = Vec::new();
        super::im2col_3x3(&x, cin, h, w, &mut cols);
        let mut expected = vec![0.0; cout * h * w];
        sgemm(cout, cin * 9, h * w, &weight, row_major(cin * 9), &cols, row_major(h * w), 0.0, &mut expected, row_major(h * w));
        (x, weight, expected)
    }

    /// Runs `run(channels, out)` on two halves of the output channels (as batch 1 splits them over
    /// threads; `block` is the kernel's channel block) and checks every output against `expected`
    /// to 1e-4 of a typical output.
    pub fn assert_matches(shape: (usize, usize, usize, usize), block: usize, expected: &[f32], run: impl FnMut(std::ops::Range<usize>, &mut [f32])) {
        assert_matches_within(shape, block, 1e-4, expected, run)
    }

    /// [`assert_matches`] to `tolerance` of a typical output.
    pub fn assert_matches_within(
        (cin, cout, h, w): (usize, usize, usize, usize),
        block: usize,
        tolerance: f32,
        expected: &[f32],
        mut run: impl FnMut(std::ops::Range<usize>, &mut [f32]),
    ) {
        let mut got = vec![f32::NAN; cout * h * w];
        let half = cout / 2 / block * block;
        let (low, high) = got.split_at_mut(half * h * w);
        run(0..half, low);
        run(half..cout, high);
        assert!(got.iter().all(|v| v.is_finite()), "{cin}->{cout} at {h}x{w}: outputs left unwritten");
        let worst = got.iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        // Sums of 9 cin terms of size ~1: the typical output is ~sqrt(9 cin).
        let typical = (cin as f32 * 9.0).sqrt();
        eprintln!("{cin}->{cout} at {h}x{w}: max abs difference {:.2e} of a typical output", worst / typical);
        assert!(worst < tolerance * typical, "{cin}->{cout} at {h}x{w}: max abs difference {worst}");
    }
}

/// Each image of `x` `[n, cin, h, w]` convolved into `out` `[n, cout, h, w]`, images in parallel.
fn winograd_each(winograd: &Winograd3x3, x: &[f32], (h, w): (usize, usize), out: &mut [f32]) {
    let (cin, cout) = (winograd.cin(), winograd.cout());
    out.par_chunks_mut(cout * h * w).zip(x.par_chunks(cin * h * w)).for_each_init(
        || (Vec::new(), Vec::new()),
        |(scratch, v), (out_img, x_img)| {
            winograd.transform_input(x_img, (h, w), scratch, v);
            winograd.run(v, (h, w), 0..cout, out_img);
        },
    );
}

/// `((p0 + p1) + p2) + …` element by element: the same sums whatever the thread count, each
/// stretch of elements on its own thread.
fn sum_in_order(partials: Vec<Vec<f32>>) -> Vec<f32> {
    let mut partials = partials.into_iter();
    let mut sum = partials.next().unwrap_or_default();
    let rest: Vec<Vec<f32>> = partials.collect();
    sum.par_chunks_mut(4096).enumerate().for_each(|(k, chunk)| {
        for partial in &rest {
            chunk.iter_mut().zip(&partial[k * 4096..]).for_each(|(s, p)| *s += p);
        }
    });
    sum
}

/// For row `(c, ky, kx)` and output position `(y, x)`: the input at `(y + ky - 1, x + kx - 1)`,
/// or 0 outside the image. Returns the valid output x range for a kernel column `kx`.
fn valid_x(kx: usize, w: usize) -> (usize, usize) {
    match kx {
        0 => (1, w),     // reads x - 1
        1 => (0, w),     // reads x
        _ => (0, w - 1), // reads x + 1
    }
}

/// Lays out the 3x3 patches of a `[c, h, w]` image as a `[c*9, h*w]` matrix in `cols`.
pub fn im2col_3x3(img: &[f32], c: usize, h: usize, w: usize, cols: &mut Vec<f32>) {
    let hw = h * w;
    cols.clear();
    cols.resize(c * 9 * hw, 0.0);
    for ci in 0..c {
        let plane = &img[ci * hw..(ci + 1) * hw];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &mut cols[((ci * 3 + ky) * 3 + kx) * hw..][..hw];
                let (x0, x1) = valid_x(kx, w);
                for y in 0..h {
                    let sy = y as isize + ky as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        continue;
                    }
                    let src = &plane[sy as usize * w..][..w];
                    let dst = &mut row[y * w..][..w];
                    dst[x0..x1].copy_from_slice(&src[x0 + kx - 1..x1 + kx - 1]);
                }
            }
        }
    }
}

/// The adjoint of [`im2col_3x3`]: adds each patch gradient back onto the image gradient.
pub fn col2im_3x3(cols: &[f32], c: usize, h: usize, w: usize, img: &mut [f32]) {
    let hw = h * w;
    for ci in 0..c {
        let plane = &mut img[ci * hw..(ci + 1) * hw];
        for ky in 0..3 {
            for kx in 0..3 {
                let row = &cols[((ci * 3 + ky) * 3 + kx) * hw..][..hw];
                let (x0, x1) = valid_x(kx, w);
                for y in 0..h {
                    let sy = y as isize + ky as isize - 1;
                    if sy < 0 || sy >= h as isize {
                        continue;
                    }
                    let dst = &mut plane[sy as usize * w..][..w];
                    let src = &row[y * w..][..w];
                    for (d, s) in dst[x0 + kx - 1..x1 + kx - 1].iter_mut().zip(&src[x0..x1]) {
                        *d += s;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// The groups' weight gradients are summed chunk by chunk on several threads, yet each value
    /// must be `((p0 + p1) + p2) + …` exactly (runs reproduce whatever the thread count).
    #[test]
    fn groups_are_summed_in_order_to_the_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        // Magnitudes from 1e-4 to 1e4, so that another order of additions would round differently.
        let partials: Vec<Vec<f32>> = (0..8).map(|_| (0..10_000).map(|_| rng.random_range(-1.0f32..1.0) * 10f32.powi(rng.random_range(-4..5))).collect()).collect();
        let serial = partials.iter().skip(1).fold(partials[0].clone(), |mut a, p| {
            a.iter_mut().zip(p).for_each(|(x, y)| *x += y);
            a
        });
        let on = |threads: usize| rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap().install(|| sum_in_order(partials.clone()));
        assert!(on(1) == serial && on(3) == serial);
        assert!(sum_in_order(Vec::new()).is_empty());
    }

    #[test]
    fn winograd_output_and_gradients_match_im2col() {
        if !crate::nn::direct_conv::available() {
            eprintln!("skipped: this CPU lacks AVX2/FMA, so Winograd falls back to im2col");
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // 32 -> 16 channels allows Winograd both ways (output needs multiples of 16, input of 8);
        // 10x7 leaves partial 4x4 tiles at the right and bottom edges.
        for (cin, cout, h, w) in [(32, 16, 12, 12), (16, 32, 10, 7), (32, 16, 48, 48)] {
            let mut layout = Layout::default();
            let mut conv = Conv2d::new(&mut layout, "c", cin, cout, 3);
            let params = layout.initial_values(&mut rng);
            let x = Tensor::from_vec([2, cin, h, w], (0..2 * cin * h * w).map(|_| rng.random_range(-1.0..1.0)).collect());
            let dy = Tensor::from_vec([2, cout, h, w], (0..2 * cout * h * w).map(|_| rng.random_range(-1.0..1.0)).collect());
            let mut results = Vec::new();
            for algorithm in [ConvAlgorithm::Im2col, ConvAlgorithm::Winograd, ConvAlgorithm::WinogradFull] {
                conv.algorithm = algorithm;
                let y = conv.forward(&params, &x);
                let mut grads = vec![0.0; params.len()];
                let dx = conv.backward(&params, &x, &dy, &mut grads, true).unwrap();
                results.push((y.data, dx.data, grads));
            }
            let [(y0, dx0, dw0), (y1, dx1, dw1), (y2, dx2, dw2)] = <[_; 3]>::try_from(results).unwrap();
            // Sums of 9·cin (output) or 9·cout (input gradient) terms of size ~1/sqrt(fan-in).
            let (dy_worst, dx_worst) = (max_abs_diff(&y0, &y1), max_abs_diff(&dx0, &dx1));
            assert!(dy_worst < 1e-4, "{cin}->{cout} at {h}x{w}: output differs by {dy_worst}");
            assert!(dx_worst < 1e-4, "{cin}->{cout} at {h}x{w}: input gradient differs by {dx_worst}");
            // `Winograd` keeps im2col's weight gradient: identical; `WinogradFull` has its own.
            assert_eq!(dw0, dw1);
            assert_eq!((&y1, &dx1), (&y2, &dx2), "WinogradFull's output and input gradient are Winograd's");
            let dw_worst = max_abs_diff(&dw0, &dw2);
            // Sums of 2·h·w products of a value ~1 and an input ~1: typically ~sqrt(2 h w).
            assert!(dw_worst < 1e-4 * ((2 * h * w) as f32).sqrt(), "{cin}->{cout} at {h}x{w}: weight gradient differs by {dw_worst}");
            assert_ne!(dw0, dw2, "WinogradFull computed im2col's weight gradient");
            assert!(y0.iter().chain(&dx0).any(|v| v.abs() > 0.1), "the comparison saw only near-zero values");
        }
    }
}
