//! 2-D convolution, stride 1, "same" padding (3x3 pads 1, 1x1 pads 0), no bias (a batch norm follows).
//!
//! Forward and backward lower each image to a matrix product: `im2col` lays the input patches out
//! as a `[cin*k*k, h*w]` matrix, so `out = W[cout, cin*k*k] · cols`.

use super::gemm::{row_major, sgemm, transposed};
use super::params::{Init, Layout, Slot};
use super::Tensor;
use rayon::prelude::*;

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
}

impl Conv2d {
    pub fn new(layout: &mut Layout, name: &str, cin: usize, cout: usize, kernel: usize) -> Self {
        assert!(kernel == 1 || kernel == 3, "only 1x1 and 3x3 convolutions are supported");
        let fan_in = cin * kernel * kernel;
        let weight = layout.alloc(format!("{name}.weight"), &[cout, cin, kernel, kernel], Init::HeNormal { fan_in }, true);
        Conv2d { cin, cout, kernel, weight }
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
        // Images are split into a fixed number of groups whose weight gradients are summed in
        // order, so the result does not depend on the thread count or scheduling (a resumed run
        // reproduces an uninterrupted one bit for bit).
        let group = n.div_ceil(GRAD_GROUPS).max(1);
        let group_grad = |g: usize, mut dx_group: Option<&mut [f32]>| {
            let (mut dw, mut cols, mut dcols) = (vec![0.0f32; self.cout * k], Vec::new(), Vec::new());
            for i in g * group..((g + 1) * group).min(n) {
                let x_img = &x.data[i * cin * hw..(i + 1) * cin * hw];
                let dy_img = &dy.data[i * self.cout * hw..(i + 1) * self.cout * hw];
                let patches = self.lower(x_img, h, w, &mut cols);
                // dW[cout, k] += dY[cout, hw] · cols^T[hw, k]
                sgemm(self.cout, hw, k, dy_img, row_major(hw), patches, transposed(hw), 1.0, &mut dw, row_major(k));
                let Some(dx_group) = dx_group.as_deref_mut() else { continue };
                let dx_img = &mut dx_group[(i - g * group) * cin * hw..][..cin * hw];
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
        let partials: Vec<Vec<f32>> = match dx.as_mut() {
            Some(dx) => dx.data.par_chunks_mut(group * cin * hw).enumerate().map(|(g, d)| group_grad(g, Some(d))).collect(),
            None => (0..n.div_ceil(group)).into_par_iter().map(|g| group_grad(g, None)).collect(),
        };
        let dw = partials.into_iter().reduce(add_into).unwrap_or_default();
        for (g, d) in self.weight.of_mut(grads).iter_mut().zip(&dw) {
            *g += d;
        }
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

fn add_into(mut a: Vec<f32>, b: Vec<f32>) -> Vec<f32> {
    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
    a
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
