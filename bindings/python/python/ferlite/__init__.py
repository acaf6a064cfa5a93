"""ferlite: facial emotion recognition on a plain CPU.

Every face in a photo to one of seven emotions (angry, disgust, fear, happy, sad, surprise,
neutral) with all seven probabilities. The model is inside the package: nothing is downloaded.

    >>> import ferlite
    >>> ferlite.analyze("photo.jpg")
    [{'box': {'x': 179, 'y': 60, 'width': 90, 'height': 117, 'score': 0.94, 'detector': 'yunet', ...},
      'emotion': 'happy', 'class_index': 3, 'confidence': 0.89, 'probabilities': {...}}]
"""

from __future__ import annotations

import os
from typing import Any, Iterable, List, Optional, Union

from ._ferlite import EMOTIONS, __version__
from ._ferlite import Predictor as _NativePredictor

__all__ = ["EMOTIONS", "Predictor", "analyze", "analyze_batch", "__version__"]

Image = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Any]
"""A path, the bytes of an encoded image (JPEG, PNG, GIF, BMP, WebP, TIFF), or an array of
8-bit pixels shaped (H, W, 3) or (H, W) (numpy, or anything with ``__array__``)."""


def _tagged(image: Image, color: str) -> tuple:
    """One image as the native module takes it: ("path", str), ("bytes", bytes) or
    ("pixels", bytes, height, width, channels)."""
    if isinstance(image, (str, os.PathLike)):
        return ("path", os.fspath(image))
    if isinstance(image, (bytes, bytearray, memoryview)):
        return ("bytes", bytes(image))
    if not hasattr(image, "__array__") and not hasattr(image, "shape"):
        raise TypeError(f"expected a path, image bytes or a pixel array, not {type(image).__name__}")
    import numpy as np  # only needed for arrays

    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"a pixel array must be uint8 (0-255), not {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]  # RGBA/BGRA: the alpha channel plays no part
    if array.ndim == 3 and array.shape[2] == 3:
        if color == "bgr":
            array = array[:, :, ::-1]
        elif color != "rgb":
            raise ValueError(f"color must be 'rgb' or 'bgr', not {color!r}")
    elif array.ndim != 2:
        raise ValueError(f"a pixel array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), not {array.shape}")
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else 3
    return ("pixels", array.tobytes(), height, width, channels)


class Predictor:
    """A loaded model, reused across calls and safe to share between threads.

    ``model_path``: a weights file from ``ferlite train`` (default: the model inside the package).
    ``precision``: ``"f32"`` (default, the same answers on every CPU), ``"int8"`` (CPUs with AVX2,
    fast with AVX-512 VNNI or AVX-VNNI; a calibrated model, as the embedded one is) or ``"bf16"``
    (CPUs with AVX-512 BF16).
    """

    def __init__(self, model_path: Optional[Union[str, "os.PathLike[str]"]] = None, precision: str = "f32"):
        self._native = _NativePredictor(None if model_path is None else os.fspath(model_path), precision)

    @property
    def source(self) -> str:
        """Where the weights came from: their path, or ``"embedded"``."""
        return self._native.source

    @property
    def val_accuracy(self) -> Optional[float]:
        """Accuracy (0-1) on FER2013's validation split recorded in the weights when trained."""
        return self._native.val_accuracy

    def analyze(
        self,
        image: Image,
        faces: str = "auto",
        detector: str = "yunet",
        tta: str = "flip",
        min_face_score: Optional[float] = None,
        color: str = "rgb",
    ) -> List[dict]:
        """Every face in ``image``, largest first, as dicts of the CLI's JSON schema: ``box``
        (``x``, ``y``, ``width``, ``height``, ``score``, ``detector``, ``landmarks`` when the
        detector gives them), ``emotion``, ``class_index``, ``confidence``, ``probabilities``.

        ``faces``: ``"auto"`` (small images are one face crop, larger ones go through the
        detector), ``"detect"`` or ``"whole"``. ``detector``, ``tta`` and ``min_face_score`` are
        ``ferlite predict``'s options of the same names. ``color``: the channel order of a
        3-channel array, ``"rgb"`` (PIL, imageio) or ``"bgr"`` (OpenCV).

        Raises ``FileNotFoundError`` for a missing path and ``ValueError`` for bytes or arrays
        that are not an image.
        """
        return self._native.analyze(_tagged(image, color), faces, detector, tta, min_face_score)

    def analyze_batch(
        self,
        images: Iterable[Image],
        threads: Optional[int] = None,
        faces: str = "auto",
        detector: str = "yunet",
        tta: str = "flip",
        min_face_score: Optional[float] = None,
        color: str = "rgb",
        return_exceptions: bool = False,
    ) -> List[Union[List[dict], Exception]]:
        """``analyze`` of every image, in order, on ``threads`` threads (default: all cores),
        without holding the GIL. With ``return_exceptions=True`` a failed image's place in the
        result holds its exception instead of raising it (for long labelling jobs)."""
        tagged = [_tagged(image, color) for image in images]
        return self._native.analyze_batch(tagged, faces, detector, tta, min_face_score, threads, return_exceptions)

    def __repr__(self) -> str:
        return f"ferlite.Predictor(source={self.source!r})"


_default: Optional[Predictor] = None


def _default_predictor() -> Predictor:
    global _default
    if _default is None:
        _default = Predictor()
    return _default


def analyze(image: Image, **options: Any) -> List[dict]:
    """Every face in ``image`` with its emotion, by the package's model; see ``Predictor.analyze``."""
    return _default_predictor().analyze(image, **options)


def analyze_batch(images: Iterable[Image], threads: Optional[int] = None, **options: Any) -> List[Union[List[dict], Exception]]:
    """Many images at once on all cores; see ``Predictor.analyze_batch``."""
    return _default_predictor().analyze_batch(images, threads=threads, **options)
