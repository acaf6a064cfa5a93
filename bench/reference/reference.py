"""Side-by-side references for ferlite on the same machine, same weights.

  check  MODEL.onnx INPUT.f32 EXPECTED.f32   run the ONNX model in ONNX Runtime on a raw float32
                                              [n,1,48,48] input; compare with ferlite's [n,7] logits
  bench  MODEL.onnx [WEIGHTS.safetensors]     time ONNX Runtime (and PyTorch on the same weights, when
                                              torch is importable and WEIGHTS given) as ferlite bench
                                              does: batch 1 on 1 and 2 threads, batch 256 on 2 threads;
                                              prints a Markdown table
  evaluate MODEL.onnx DIR [THREADS]           the whole job of `ferlite evaluate DIR --tta none` in
                                              ONNX Runtime: read and decode every image of DIR's class
                                              folders (PIL), standardise each face as ferlite does,
                                              classify in batches of 64, count the right labels;
                                              prints the accuracy and the wall time (1 thread default)
"""
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort


def session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def check(model, input_path, expected_path):
    x = np.fromfile(input_path, dtype=np.float32).reshape(-1, 1, 48, 48)
    expected = np.fromfile(expected_path, dtype=np.float32).reshape(x.shape[0], -1)
    got = session(model, 1).run(None, {"face": x})[0]
    diff = float(np.abs(got - expected).max())
    same = bool((got.argmax(1) == expected.argmax(1)).all())
    print(f"onnxruntime {ort.__version__}: max |logit difference| {diff:.3g}, same predictions: {same}")
    sys.exit(0 if diff < 1e-3 and same else 1)


def timed(fn, repeats):
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), min(samples), max(samples)


def row(name, seconds, n):
    med, lo, hi = seconds
    return f"| {name} | {med * 1e3:.2f} ms ({lo * 1e3:.2f}..{hi * 1e3:.2f}) | {n / med:.1f} img/s |"


def bench(model, weights=None):
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, 1, 48, 48), dtype=np.float32)
    batch = rng.standard_normal((256, 1, 48, 48), dtype=np.float32)
    print("| system | time per batch, median (min..max) | throughput |")
    print("|---|---|---|")
    for threads in (1, 2):
        s = session(model, threads)
        print(row(f"ONNX Runtime {ort.__version__}, batch 1, {threads} thread(s)", timed(lambda: s.run(None, {"face": one}), 200), 1))
    s = session(model, 2)
    print(row(f"ONNX Runtime {ort.__version__}, batch 256, 2 threads", timed(lambda: s.run(None, {"face": batch}), 10), 256))
    if weights is None:
        return
    try:
        import torch
        import torch.nn.functional as F
        import safetensors  # noqa: F401 (load_ferlite reads the weights with it)
        from torch_model import load_ferlite
    except ImportError:
        print("\n(PyTorch rows skipped: torch and safetensors are not both installed in this venv)")
        return
    net, _ = load_ferlite(weights)
    with torch.inference_mode():
        # The ONNX model has its batch norms folded: the two must still agree to float rounding.
        diff = float(abs(net(torch.from_numpy(batch)).numpy() - s.run(None, {"face": batch})[0]).max())
    for threads in (1, 2):
        torch.set_num_threads(threads)
        x = torch.from_numpy(one)
        with torch.inference_mode():
            print(row(f"PyTorch {torch.__version__} eager, batch 1, {threads} thread(s)", timed(lambda: net(x), 200), 1))
    torch.set_num_threads(2)
    with torch.inference_mode():
        xb = torch.from_numpy(batch)
        print(row(f"PyTorch {torch.__version__} eager, batch 256, 2 threads", timed(lambda: net(xb), 10), 256))
    # One training step as ferlite bench times it: batch 64, forward, loss, backward, SGD update.
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    xt = torch.from_numpy(batch[:64].copy())
    yt = torch.from_numpy(rng.integers(0, 7, 64))

    def step():
        opt.zero_grad()
        F.cross_entropy(net(xt), yt, label_smoothing=0.1).backward()
        opt.step()

    print(row(f"PyTorch {torch.__version__} eager, train step batch 64, 2 threads", timed(step, 10), 64))
    print(f"\n(PyTorch model vs ONNX Runtime on the same batch of 256: max |logit difference| {diff:.3g})")

EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def evaluate(model, folder, threads="1"):
    from PIL import Image

    start = time.perf_counter()
    s = session(model, int(threads))
    files = [(os.path.join(folder, name, f), label) for label, name in enumerate(EMOTIONS) for f in sorted(os.listdir(os.path.join(folder, name)))]
    right = 0
    for at in range(0, len(files), 64):
        chunk = files[at:at + 64]
        faces = np.stack([np.asarray(Image.open(path).convert("L").resize((48, 48)), dtype=np.float32) / 255.0 for path, _ in chunk])
        # ferlite's normalize_pixels: each face to mean 0, standard deviation 1 (at least 1/64 before).
        mean = faces.mean(axis=(1, 2), keepdims=True)
        std = np.maximum(faces.std(axis=(1, 2), keepdims=True), 1.0 / 64.0)
        logits = s.run(None, {"face": ((faces - mean) / std)[:, None]})[0]
        right += int((logits.argmax(1) == np.array([label for _, label in chunk])).sum())
    seconds = time.perf_counter() - start
    print(f"ONNX Runtime {ort.__version__}, {threads} thread(s): {len(files)} faces, accuracy {100 * right / len(files):.2f}%, {seconds:.2f} s")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "check":
        check(*sys.argv[2:])
    elif len(sys.argv) in (3, 4) and sys.argv[1] == "bench":
        bench(*sys.argv[2:])
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "evaluate":
        evaluate(*sys.argv[2:])
    else:
        print(__doc__)
        sys.exit(2)
