"""The Python binding: API shapes, inputs (path, bytes, arrays), errors, batches and threads,
and agreement with the `ferlite` command line on the same photo."""

import io
import json
import os
import random
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ferlite

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "assets" / "demo" / "astronaut.jpg"
CLI = Path(os.environ.get("FERLITE_BIN", REPO / "target" / "release" / "ferlite"))


@pytest.fixture(scope="module")
def predictor():
    return ferlite.Predictor()


@pytest.fixture(scope="module")
def demo_png(tmp_path_factory):
    """The demo photo as PNG, so that PIL and ferlite decode it to the same pixels."""
    path = tmp_path_factory.mktemp("png") / "astronaut.png"
    Image.open(DEMO).convert("RGB").save(path)
    return path


def test_analyze_a_path_gives_the_astronauts_face_with_seven_probabilities():
    faces = ferlite.analyze(str(DEMO))
    assert len(faces) == 1
    face = faces[0]
    assert set(face) == {"box", "emotion", "class_index", "confidence", "probabilities"}
    assert face["emotion"] == "happy"
    assert list(face["probabilities"]) == ferlite.EMOTIONS
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert face["confidence"] == max(face["probabilities"].values())
    assert ferlite.EMOTIONS[face["class_index"]] == face["emotion"]
    box = face["box"]
    assert set(box) == {"x", "y", "width", "height", "score", "detector", "landmarks"}
    assert 0 <= box["x"] < 512 and 0 <= box["y"] < 512 and 40 < box["width"] < 200 and 40 < box["height"] < 200
    assert 0.0 < box["score"] < 1.0 and box["detector"] == "yunet" and len(box["landmarks"]) == 5


def test_version_emotions_and_model_attributes(predictor):
    assert isinstance(ferlite.__version__, str) and ferlite.__version__.count(".") == 2
    assert ferlite.EMOTIONS == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert predictor.source == "embedded"
    assert predictor.val_accuracy is None or 0.0 < predictor.val_accuracy < 1.0
    assert "embedded" in repr(predictor)


@pytest.mark.skipif(not CLI.exists(), reason=f"no ferlite binary at {CLI} (cargo build --release, or set FERLITE_BIN)")
def test_results_equal_the_command_lines_json():
    out = subprocess.run([str(CLI), "predict", "--json", str(DEMO)], capture_output=True, text=True, check=True).stdout
    cli_faces = json.loads(out.splitlines()[0])["faces"]
    # One schema: the same keys, nesting and values (landmark pairs are tuples in Python).
    assert json.loads(json.dumps(ferlite.analyze(DEMO))) == cli_faces


def test_bytes_and_arrays_give_what_the_file_gives(predictor, demo_png):
    from_path = predictor.analyze(demo_png)
    assert predictor.analyze(demo_png.read_bytes()) == from_path
    rgb = np.asarray(Image.open(demo_png))
    assert rgb.shape[2] == 3 and rgb.dtype == np.uint8
    assert predictor.analyze(rgb) == from_path
    assert predictor.analyze(np.ascontiguousarray(rgb[:, :, ::-1]), color="bgr") == from_path
    # A non-contiguous view (every other column) is copied, not misread.
    half = predictor.analyze(rgb[:, ::2])
    assert isinstance(half, list)


def test_gray_arrays_are_taken_as_gray(predictor, demo_png):
    gray = np.asarray(Image.open(demo_png).convert("L"))
    faces = predictor.analyze(gray)
    assert len(faces) == 1
    assert predictor.analyze(gray[:, :, None]) == faces


def test_a_face_crop_is_one_face_and_whole_forces_it(predictor):
    crop = np.full((48, 48), 120, dtype=np.uint8)
    crop[10:20, 10:38] = 60
    crop[30:36, 14:34] = 200
    faces = predictor.analyze(crop)
    whole = {"x": 0, "y": 0, "width": 48, "height": 48, "score": None}
    assert len(faces) == 1 and faces[0]["box"] == whole
    assert predictor.analyze(crop, faces="whole", tta="none")[0]["box"] == whole


def test_missing_path_is_file_not_found(predictor):
    with pytest.raises(FileNotFoundError, match="no-such-photo.jpg"):
        predictor.analyze("no-such-photo.jpg")
    with pytest.raises(FileNotFoundError):
        ferlite.Predictor(model_path="no-such-model.safetensors")


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_bytes_that_are_not_an_image_are_value_errors(predictor, data):
    with pytest.raises(ValueError):
        predictor.analyze(data)


def test_truncated_image_is_a_value_error(predictor, demo_png):
    with pytest.raises(ValueError, match="corrupt|truncated|not an image"):
        predictor.analyze(demo_png.read_bytes()[:5000])


@pytest.mark.parametrize(
    "array",
    [np.zeros((10, 10, 3), dtype=np.float32), np.zeros((2, 10, 10, 3), dtype=np.uint8), np.zeros((10, 10, 2), dtype=np.uint8)],
)
def test_arrays_of_the_wrong_type_or_shape_are_value_errors(predictor, array):
    with pytest.raises(ValueError):
        predictor.analyze(array)


def test_int8_precision_gives_the_f32_label_with_close_probabilities(predictor):
    try:
        int8 = ferlite.Predictor(precision="int8")
    except ValueError as error:  # a CPU without AVX2
        pytest.skip(str(error))
    f32_face, int8_face = predictor.analyze(DEMO)[0], int8.analyze(DEMO)[0]
    assert int8_face["emotion"] == f32_face["emotion"]
    for emotion, p in f32_face["probabilities"].items():
        assert int8_face["probabilities"][emotion] == pytest.approx(p, abs=0.05)


def test_unknown_options_are_value_errors_naming_the_choices(predictor):
    with pytest.raises(ValueError, match="tta.*flip"):
        predictor.analyze(DEMO, tta="sideways")
    with pytest.raises(ValueError, match="faces"):
        predictor.analyze(DEMO, faces="some")
    with pytest.raises(ValueError, match="precision"):
        ferlite.Predictor(precision="f8")
    with pytest.raises(ValueError, match="score"):
        predictor.analyze(DEMO, min_face_score=1.5)
    with pytest.raises(TypeError):
        predictor.analyze(12345)


def test_hostile_bytes_never_crash_the_interpreter(predictor, demo_png):
    rng = random.Random(7)
    good = demo_png.read_bytes()[:20000]
    for _ in range(150):
        data = bytearray(good)
        for _ in range(rng.randint(1, 20)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            result = predictor.analyze(bytes(data[: rng.randint(1, len(data))]))
        except ValueError:
            continue
        assert isinstance(result, list)


def test_analyze_batch_keeps_order_and_equals_one_by_one(predictor, demo_png):
    crop = np.full((48, 48), 90, dtype=np.uint8)
    items = [DEMO, crop, demo_png.read_bytes(), str(DEMO)]
    batch = predictor.analyze_batch(items, threads=2)
    assert batch == [predictor.analyze(item) for item in items]
    assert ferlite.analyze_batch(items) == batch
    assert predictor.analyze_batch([]) == []


def test_analyze_batch_raises_or_returns_the_failures(predictor):
    items = [DEMO, b"junk", "no-such-photo.jpg"]
    with pytest.raises(ValueError):
        predictor.analyze_batch(items)
    results = predictor.analyze_batch(items, return_exceptions=True)
    assert isinstance(results[0], list) and len(results[0]) == 1
    assert isinstance(results[1], ValueError)
    assert isinstance(results[2], FileNotFoundError)
    with pytest.raises(ValueError, match="threads"):
        predictor.analyze_batch(items, threads=0)


def test_one_predictor_is_safe_to_share_between_threads(predictor, demo_png):
    expected = predictor.analyze(demo_png)
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append(predictor.analyze(demo_png))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [expected] * 12
