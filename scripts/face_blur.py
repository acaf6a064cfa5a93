"""ferlite's face blur (`src/data/blur.rs`, `gaussian_blur`) in numpy, for the scripts beside it:
a separable Gaussian, radius ceil(3 sigma), mirrored about the edge pixels (OpenCV's
BORDER_REFLECT_101), rounded to 0-255. Matches the Rust blur to within one grey level."""
import math

import numpy as np


def gaussian_blur(faces, sigma):
    """`faces`: uint8 array whose last two axes are one face (a face, or a stack [n, h, w])."""
    if sigma <= 0:
        return faces
    radius = math.ceil(3 * sigma)
    d = np.arange(-radius, radius + 1)
    w = np.exp(-(d * d) / (2 * sigma * sigma))
    w /= w.sum()
    x = faces.astype(np.float64)
    for axis in (x.ndim - 1, x.ndim - 2):
        n = x.shape[axis]
        idx = np.mod(np.arange(n)[:, None] + d[None, :], 2 * (n - 1))
        idx = np.where(idx < n, idx, 2 * (n - 1) - idx)
        # take() puts each pixel's window right after `axis`; summing it away leaves the shape.
        x = np.tensordot(np.take(x, idx, axis=axis), w, axes=([axis + 1], [0]))
    return np.clip(np.round(x), 0, 255).astype(np.uint8)
