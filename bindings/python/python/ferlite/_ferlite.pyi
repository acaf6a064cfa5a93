"""The native module behind ``ferlite``; call ``ferlite.analyze`` and ``ferlite.Predictor`` instead."""

from typing import List, Optional, Tuple, Union

EMOTIONS: List[str]
__version__: str

Tagged = Union[Tuple[str, str], Tuple[str, bytes], Tuple[str, bytes, int, int, int]]

class Predictor:
    def __init__(self, model_path: Optional[str] = None, precision: str = "f32") -> None: ...
    @property
    def source(self) -> str: ...
    @property
    def val_accuracy(self) -> Optional[float]: ...
    def analyze(self, item: Tagged, faces: str, detector: str, tta: str, min_face_score: Optional[float]) -> List[dict]: ...
    def analyze_batch(
        self,
        items: List[Tagged],
        faces: str,
        detector: str,
        tta: str,
        min_face_score: Optional[float],
        threads: Optional[int],
        return_exceptions: bool,
    ) -> List[Union[List[dict], Exception]]: ...
