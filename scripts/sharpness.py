#!/usr/bin/env python3
"""Compare the sharpness of FER2013 splits and find the blur that makes val/ look like train/.

Usage: python3 scripts/sharpness.py [../shared/data/fer2013]   (needs: pip install pillow numpy)

Prints, per split, the mean absolute horizontal pixel difference and the per-image contrast, then
the radially averaged amplitude spectrum of train/ and of val/ after each candidate degradation,
normalised to the lowest band, with the mean log error over the first four bands (lower = closer).
"""
import glob
import random
import sys

import numpy as np
from PIL import Image, ImageFilter

root = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/fer2013"
random.seed(3)
window = np.outer(np.hanning(48), np.hanning(48))
fy, fx = np.fft.fftfreq(48)[:, None], np.fft.fftfreq(48)[None, :]
radius = np.sqrt(fx**2 + fy**2)
bands = [(lo, lo + 0.04) for lo in np.arange(0, 0.32, 0.04)]


def load(split, n):
    return [Image.open(f) for f in random.sample(glob.glob(f"{root}/{split}/*/*.jpg"), n)]


def profile(images):
    power = np.zeros((48, 48))
    for im in images:
        a = np.asarray(im, dtype=float)
        power += np.abs(np.fft.fft2((a - a.mean()) * window)) ** 2
    power /= len(images)
    p = np.array([np.sqrt(power[(radius >= lo) & (radius < hi)].mean()) for lo, hi in bands])
    return p / p[0]


train, val = load("train", 1000), load("val", 1000)
for name, images in [("train", train), ("val", val)]:
    arrays = [np.asarray(im, dtype=float) for im in images]
    grad = np.mean([np.abs(np.diff(a, axis=1)).mean() for a in arrays])
    contrast = np.mean([a.std() for a in arrays])
    print(f"{name:5}  mean |dx| {grad:5.2f}   per-image std {contrast:5.1f}")

reference = profile(train)
print("band starts (cycles/px):", " ".join(f"{lo:.2f}" for lo, _ in bands))
print(f"{'train':22}", reference.round(3))
for sigma in [0.0, 2.0, 2.5, 3.0, 3.5]:
    p = profile([im.filter(ImageFilter.GaussianBlur(sigma)) if sigma else im for im in val])
    err = np.abs(np.log(p[:4] / reference[:4])).mean()
    print(f"{f'val, gaussian {sigma}':22}", p.round(3), f"err {err:.3f}")
