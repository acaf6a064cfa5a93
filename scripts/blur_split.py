#!/usr/bin/env python3
"""Copy a folder of class folders of faces, each face Gaussian-blurred or shrunk and enlarged again:
soft faces (like FER2013's blurred train/ split, a small face in a photo, a soft webcam) to evaluate
ferlite and its peers on.

Usage (needs: pillow numpy):
    python3 scripts/blur_split.py ../shared/data/fer2013/val /tmp/val-blur3 3.0
    python3 scripts/blur_split.py ../shared/data/fer2013/val /tmp/val-24px 24px

`3.0`: ferlite's own blur (`data/blur.rs`, `gaussian_blur`; in numpy in `face_blur.py`). `24px`: the face shrunk to 24x24 (box filter, as a
small face in a photo has only that many pixels) and enlarged back to 48x48 (bicubic, as a detector's
crop is). Each face is written as JPEG quality 95 under the same class folder and file name.
"""
import sys
from pathlib import Path

import numpy as np
from face_blur import gaussian_blur
from PIL import Image


def shrink_and_enlarge(face, side):
    small = Image.fromarray(face).resize((side, side), Image.Resampling.BOX)
    return np.asarray(small.resize(face.shape[::-1], Image.Resampling.BICUBIC))


src, dst, how = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
if how.endswith("px"):
    soften = lambda face: shrink_and_enlarge(face, int(how[:-2]))  # noqa: E731
else:
    soften = lambda face: gaussian_blur(face, float(how))  # noqa: E731
count = 0
for path in sorted(src.glob("*/*")):
    if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
        continue
    out = dst / path.parent.name / (path.stem + ".jpg")
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(soften(np.asarray(Image.open(path).convert("L")))).save(out, quality=95)
    count += 1
print(f"{count} faces softened ({how}) into {dst}")
