"""YuNet's head outputs from ONNX Runtime, for the test that pins ferlite's own YuNet kernels to it.

    pip install onnxruntime numpy && python3 scripts/yunet_reference.py

The input is a synthetic 96x64 canvas both sides compute exactly: channel c of pixel (y, x) is
(7x + 13y + 29c) mod 256. Prints, per stride, the head's 16 outputs (class and objectness after the
sigmoid, box, landmarks) at the cells the test reads: `faces::yunet::tests::the_network_matches_onnx_runtime`.
"""
import numpy as np
import onnxruntime as ort

H, W = 64, 96
y, x, c = np.meshgrid(np.arange(H), np.arange(W), np.arange(3), indexing="ij")
canvas = ((7 * x + 13 * y + 29 * c) % 256).astype(np.float32)  # [h, w, c], BGR order as fed
inp = canvas.transpose(2, 0, 1)[None]
session = ort.InferenceSession("assets/yunet/yunet_n_dynamic.onnx", providers=["CPUExecutionProvider"])
out = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"input": inp})))
for stride in (8, 16, 32):
    cols = W // stride
    for cell in (0, cols + 1):
        values = [out[f"cls_{stride}"][0, cell, 0], out[f"obj_{stride}"][0, cell, 0], *out[f"bbox_{stride}"][0, cell], *out[f"kps_{stride}"][0, cell]]
        print(f"({stride}, {cell}, [{', '.join(f'{v:.6}' for v in values)}]),")
