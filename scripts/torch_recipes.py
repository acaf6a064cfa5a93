"""Training recipes for ferlite's network, tried in PyTorch on a lent GPU (a diagnostic, not how
the shipped model is made: that is `ferlite train`). It answers two questions in minutes instead of
days: does ferlite's trainer reach what PyTorch reaches with the same recipe (the `run-b` recipe is
ferlite's run B), and which recipe changes move val/ accuracy on this blurred training split.

Data and evaluation follow ferlite exactly: faces standardised per image (emotion::normalize_pixels),
training augmentation as data/augment.rs (flip, rotation, zoom, shift, bilinear with clamped edges,
random erasing), val/ faces blurred with the model's input blur (data/blur.rs) before
standardising, flip TTA averaging the probabilities of the face and its mirror image.

  python3 scripts/torch_recipes.py --data DIR --out DIR [--epochs N] [--only a,b] [--smoke]

DIR holds train/<class>/*.jpg and val/<class>/*.jpg. Each recipe runs in its own process, all at
once on one GPU; each writes OUT/<recipe>.jsonl (one line per epoch) and the table at the end
summarises the best val epoch of each.
"""
import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

# data/blur.rs's blur (edges mirrored since session 15; the logged runs before it extended them).
# ferlite tops a face's blur up to sigma (`blur_to`); for val/'s sharp faces that is this blur
# within a few hundredths of a pixel.
from face_blur import gaussian_blur

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench" / "reference"))

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]

BASE = dict(  # ferlite's run B (docs/experiments.md)
    epochs=50, batch=64, optimizer="adamw", lr=1e-3, weight_decay=0.05, warmup=2.0, label_smoothing=0.1,
    stage_dropout=0.1, head_dropout=0.5, flip=True, rotation=10.0, shift=0.1, zoom=0.1, erase=0.25,
    mixup=0.0, blur=3.0, seed=42, init=None,
    net=None,  # FerliteNet arguments that differ from the paper preset (a wider teacher)
    teacher=None,  # distillation: teacher weight files or recipe names (their best epoch), probabilities averaged
    kd_alpha=0.0,  # target = (1 - kd_alpha) * smoothed label + kd_alpha * teacher probabilities
    kd_online=False,  # teacher run on each augmented batch (else once on the unaugmented faces, as ferlite could)
    kd_temperature=1.0,  # the teacher's probabilities are softmax(logits / T): T > 1 flattens them
    class_weight=0.0,  # each face's loss weighted by (its class's share / mean share) ** -class_weight
    blur_aug=0.0,  # half of each batch blurred by one Gaussian of sigma ~ U(0, blur_aug), then re-standardised
    ema=0.999,  # decay of an exponential moving average of the weights, scored beside them each epoch
)
SHIPPED = "models/fer2013/model.safetensors"
FINETUNE = dict(init=SHIPPED, lr=5e-4, warmup=1.0, seed=43)  # like run C (models/fer2013/finetune-config.json)
RECIPES = {
    "run-b": {},
    "light-reg": dict(stage_dropout=0.05, head_dropout=0.3, erase=0.1),
    "no-reg": dict(stage_dropout=0.0, head_dropout=0.0, erase=0.0, label_smoothing=0.0, weight_decay=0.0),
    "sgd": dict(optimizer="sgd", lr=0.01, weight_decay=5e-4),
    "strong-aug": dict(rotation=15.0, shift=0.15, zoom=0.15, erase=0.5),
    "mixup": dict(mixup=0.2),
    "long": dict(epochs=150),
    "ft-no-dropout-20": dict(FINETUNE, epochs=20, stage_dropout=0.0, head_dropout=0.0, erase=0.0),
    "ft-no-dropout-30": dict(FINETUNE, epochs=30, stage_dropout=0.0, head_dropout=0.0, erase=0.0),
    "ft-light-reg-30": dict(FINETUNE, epochs=30, stage_dropout=0.05, head_dropout=0.3, erase=0.1),
    "ft-no-dropout-lr1e-3-30": dict(FINETUNE, epochs=30, lr=1e-3, stage_dropout=0.0, head_dropout=0.0, erase=0.0),
    "no-dropout": dict(stage_dropout=0.0, head_dropout=0.0, erase=0.0),
    "no-reg-flip-only": dict(stage_dropout=0.0, head_dropout=0.0, erase=0.0, label_smoothing=0.0, weight_decay=0.0,
                             rotation=0.0, shift=0.0, zoom=0.0),
    "batch256": dict(batch=256, lr=2e-3),
    # From the shipped model (run D), geometry augmentation widened so the network tolerates how a
    # face detector frames faces (issue #4: box side sd ~0.13 of the face, see examples/detection_recall.rs).
    "ft3-control": dict(FINETUNE, epochs=20, stage_dropout=0.0, head_dropout=0.0, erase=0.0),
    "ft3-zoom20": dict(FINETUNE, epochs=20, stage_dropout=0.0, head_dropout=0.0, erase=0.0, zoom=0.2),
    "ft3-zoom20-shift15": dict(FINETUNE, epochs=20, stage_dropout=0.0, head_dropout=0.0, erase=0.0, zoom=0.2, shift=0.15),
    "ft3-zoom30-shift15": dict(FINETUNE, epochs=20, stage_dropout=0.0, head_dropout=0.0, erase=0.0, zoom=0.3, shift=0.15),
}

# Knowledge distillation (session 10): is a wider network, or an ensemble, a better teacher than the
# labels for the paper-sized network on this blurred data? Teachers train in the first phase,
# students (fine-tunes of the shipped model with run E's recipe) in the second.
RUN_E = dict(FINETUNE, epochs=20, stage_dropout=0.0, head_dropout=0.0, erase=0.0, zoom=0.2, shift=0.15)
NO_DROPOUT = dict(stage_dropout=0.0, head_dropout=0.0, erase=0.0)
RECIPES.update({
    "teacher-w2": dict(NO_DROPOUT, epochs=30, net=dict(stem_channels=64, stage_channels=[64, 128, 256], hidden_units=512)),
    "teacher-w4": dict(NO_DROPOUT, epochs=30, net=dict(stem_channels=64, stage_channels=[128, 256, 512], hidden_units=1024)),
    "ens-seed44": dict(RUN_E, seed=44),
    "ens-seed45": dict(RUN_E, seed=45),
    "ens-seed46": dict(RUN_E, seed=46),
    "run-e": RUN_E,
    "kd-w2-a5": dict(RUN_E, teacher=["teacher-w2"], kd_alpha=0.5),
    "kd-w2-a9": dict(RUN_E, teacher=["teacher-w2"], kd_alpha=0.9),
    "kd-w2-online-a5": dict(RUN_E, teacher=["teacher-w2"], kd_alpha=0.5, kd_online=True),
    "kd-w4-a5": dict(RUN_E, teacher=["teacher-w4"], kd_alpha=0.5),
    "kd-ens-a5": dict(RUN_E, teacher=[SHIPPED, "ens-seed44", "ens-seed45", "ens-seed46"], kd_alpha=0.5),
})
# The second look: another seed for the best student and its control, other weights, and a
# student from scratch, all with the committed teacher (the shipped model is then run E's).
TEACHER_W2 = "models/fer2013/teacher-w2.safetensors"
RECIPES.update({
    "run-e-seed44": dict(RUN_E, seed=44),
    "kd-w2-a5-seed44": dict(RUN_E, seed=44, teacher=[TEACHER_W2], kd_alpha=0.5),
    "kd-w2-a3": dict(RUN_E, teacher=[TEACHER_W2], kd_alpha=0.3),
    "kd-w2-a7": dict(RUN_E, teacher=[TEACHER_W2], kd_alpha=0.7),
    "kd-w2-a5-scratch": dict(NO_DROPOUT, epochs=35, teacher=[TEACHER_W2], kd_alpha=0.5),
})

# Session 12: does a softer teacher (softmax at temperature T) make a better target? Run F's
# recipe (run E's weights, teacher-w2, α 0.5) at the input blur chosen since (3.2), three seeds each.
RUN_E_WEIGHTS = ".device/run-e-epoch14.safetensors"  # runs/run-e-epoch14.safetensors, carried to the lent machine
RUN_F = dict(RUN_E, init=RUN_E_WEIGHTS, blur=3.2, teacher=[TEACHER_W2], kd_alpha=0.5)
RECIPES.update({f"kd-t{t}-seed{seed}": dict(RUN_F, kd_temperature=float(t), seed=seed) for t in (1, 2, 4) for seed in (43, 44, 45)})
# How much does width buy from scratch with a longer schedule on this data (the ceiling question)?
W4 = dict(stem_channels=64, stage_channels=[128, 256, 512], hidden_units=1024)
RECIPES.update({"cap-paper-45": dict(NO_DROPOUT, epochs=45, blur=3.2), "cap-w4-45": dict(NO_DROPOUT, epochs=45, blur=3.2, net=W4)})
# ... and is that longer-trained wide network a better teacher than teacher-w2 (run F's recipe otherwise)?
RECIPES.update({f"kd-w4long-seed{seed}": dict(RUN_F, teacher=["cap-w4-45"], seed=seed) for seed in (43, 44, 45)})

# Session 14: two levers that would be cheap in ferlite's trainer, on run F's recipe, three seeds each.
# Class-weighted loss (disgust is 1.5% of train; the issue asks for macro-F1) and extra blur on half
# the training faces (the training split's blur varies from face to face, val's σ 3.2 is fixed).
# Every run also scores an exponential moving average of its weights.
RECIPES.update({f"s14-control-seed{seed}": dict(RUN_F, seed=seed) for seed in (43, 44, 45)})
RECIPES.update({f"s14-balanced-seed{seed}": dict(RUN_F, seed=seed, class_weight=0.5) for seed in (43, 44, 45)})
RECIPES.update({f"s14-bluraug-seed{seed}": dict(RUN_F, seed=seed, blur_aug=1.5) for seed in (43, 44, 45)})

# Val faces re-framed the way a detector's box moves them: fixed random zoom and shift per face.
FRAMING_JITTER = dict(flip=False, rotation=0.0, zoom=0.15, shift=0.08, erase=0.0)


def load_split(root):
    paths, labels = [], []
    for label, name in enumerate(CLASSES):
        files = sorted((root / name).glob("*.jpg"))
        paths += files
        labels += [label] * len(files)
    with mp.Pool(min(16, os.cpu_count())) as pool:
        pixels = pool.map(_read_gray, paths, chunksize=256)
    return np.stack(pixels), np.array(labels, dtype=np.int64)


def _read_gray(path):
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"), dtype=np.uint8).reshape(48, 48)


def standardise(faces):
    """emotion::normalize_pixels, on a torch tensor [n, 48, 48] of 0..255 values."""
    x = faces.float() / 255.0
    mean = x.mean((1, 2), keepdim=True)
    std = ((x - mean) ** 2).mean((1, 2), keepdim=True).sqrt().clamp_min(1e-3)
    return ((x - mean) / std).unsqueeze(1)


def augment(x, r, gen):
    """data/augment.rs on a batch [n, 1, 48, 48] of standardised faces, on the GPU."""
    import torch
    import torch.nn.functional as F

    n, dev = x.shape[0], x.device
    u = lambda m: (torch.rand(n, device=dev, generator=gen) * 2 - 1) * m
    flip = torch.where(torch.rand(n, device=dev, generator=gen) < 0.5, -1.0, 1.0) if r["flip"] else torch.ones(n, device=dev)
    angle = u(math.radians(r["rotation"]))
    zoom = 1 + u(r["zoom"])
    # Shifts in pixels, to the normalised [-1, 1] grid (align_corners: pixel 0 -> -1, 47 -> 1).
    tx, ty = u(r["shift"] * 48) / 23.5, u(r["shift"] * 48) / 23.5
    cos, sin = angle.cos() / zoom, angle.sin() / zoom
    m = torch.stack([torch.stack([flip * cos, flip * sin], 1), torch.stack([-sin, cos], 1)], 1)
    t = -(m @ torch.stack([tx, ty], 1).unsqueeze(2)).squeeze(2)
    theta = torch.cat([m, t.unsqueeze(2)], 2)
    grid = F.affine_grid(theta, x.shape, align_corners=True)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
    if r["erase"] > 0:
        area = (torch.rand(n, device=dev, generator=gen) * 0.18 + 0.02) * 2304
        aspect = torch.exp(torch.rand(n, device=dev, generator=gen) * (math.log(3.3) - math.log(0.3)) + math.log(0.3))
        h = (area * aspect).sqrt().round().clamp(1, 48)
        w = (area / aspect).sqrt().round().clamp(1, 48)
        y0 = (torch.rand(n, device=dev, generator=gen) * (49 - h)).floor()
        x0 = (torch.rand(n, device=dev, generator=gen) * (49 - w)).floor()
        rows = torch.arange(48, device=dev).view(1, 48, 1)
        cols = torch.arange(48, device=dev).view(1, 1, 48)
        inside = (rows >= y0.view(n, 1, 1)) & (rows < (y0 + h).view(n, 1, 1)) & (cols >= x0.view(n, 1, 1)) & (cols < (x0 + w).view(n, 1, 1))
        chosen = (torch.rand(n, device=dev, generator=gen) < r["erase"]).view(n, 1, 1)
        x = x.masked_fill((inside & chosen).unsqueeze(1), 0.0)
    return x


def blur_half(x, max_sigma, gen):
    """Half of the batch (standardised faces [n, 1, 48, 48]) blurred by one Gaussian of
    sigma ~ U(0, max_sigma), edges extended, then standardised again."""
    import torch
    import torch.nn.functional as F

    sigma = float(torch.rand((), device=x.device, generator=gen)) * max_sigma
    if sigma < 0.2:
        return x
    radius = math.ceil(3 * sigma)
    d = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    w = torch.exp(-(d * d) / (2 * sigma * sigma))
    w = w / w.sum()
    chosen = torch.rand(x.shape[0], device=x.device, generator=gen) < 0.5
    b = F.pad(x[chosen], (radius, radius, radius, radius), mode="replicate")
    b = F.conv2d(F.conv2d(b, w.view(1, 1, 1, -1)), w.view(1, 1, -1, 1))
    mean = b.mean((2, 3), keepdim=True)
    std = ((b - mean) ** 2).mean((2, 3), keepdim=True).sqrt().clamp_min(1e-3)
    x = x.clone()
    x[chosen] = (b - mean) / std
    return x


def lr_at(r, step, total, per_epoch):
    """nn/schedule.rs cosine: linear warm-up, then cosine down to 1e-3 of the peak."""
    warm = r["warmup"] * per_epoch
    if step < warm:
        return r["lr"] * (step + 1) / warm
    frac = min(max((step - warm) / max(total - warm, 1), 0.0), 1.0)
    low = r["lr"] * 1e-3
    return low + 0.5 * (r["lr"] - low) * (1 + math.cos(math.pi * frac))


def run_recipe(name, r, data_file, out_dir):
    import torch
    import torch.nn.functional as F
    from torch_model import FerliteNet

    torch.manual_seed(r["seed"])
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    data = np.load(data_file)
    train_x = standardise(torch.from_numpy(data["train_x"]).to(dev))
    train_y = torch.from_numpy(data["train_y"]).to(dev)
    val_y = torch.from_numpy(data["val_y"]).to(dev)
    val_x = standardise(torch.from_numpy(gaussian_blur(data["val_x"], r["blur"])).to(dev))
    jitter_gen = torch.Generator(device=dev)
    jitter_gen.manual_seed(7)
    val_x_jittered = augment(val_x, FRAMING_JITTER, jitter_gen)
    net = FerliteNet(**network_config(r))
    if r["init"]:
        from torch_model import load_ferlite

        net.load_state_dict(load_ferlite(r["init"])[0].state_dict())
    net = net.to(dev).to(memory_format=torch.channels_last)
    decay = [p for n, p in net.named_parameters() if n.endswith("conv.weight") or n.endswith("fc1.weight") or n.endswith("fc2.weight")]
    rest = [p for n, p in net.named_parameters() if not (n.endswith("conv.weight") or n.endswith("fc1.weight") or n.endswith("fc2.weight"))]
    groups = [{"params": decay, "weight_decay": r["weight_decay"]}, {"params": rest, "weight_decay": 0.0}]
    if r["optimizer"] == "sgd":
        opt = torch.optim.SGD(groups, lr=r["lr"], momentum=0.9, nesterov=True)
    else:
        opt = torch.optim.AdamW(groups, lr=r["lr"], betas=(0.9, 0.999), eps=1e-8)
    gen = torch.Generator(device=dev)
    gen.manual_seed(r["seed"])
    ema = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(r["ema"]),
                                              use_buffers=True)
    counts = torch.bincount(train_y, minlength=7).float()
    class_w = (counts / counts.mean()) ** -r["class_weight"]
    class_w = class_w / (class_w[train_y].mean())  # mean weight over the training faces is 1
    teachers = [load_teacher(t, out_dir).to(dev) for t in r["teacher"] or []]
    if teachers:
        soft = teacher_probs(teachers, train_x, r["kd_temperature"])
        with open(out_dir / f"{name}-teacher.json", "w") as f:
            json.dump(dict(teacher=r["teacher"], val_flip=teacher_val(teachers, val_x, val_y),
                           train_accuracy=(soft.argmax(1) == train_y).float().mean().item()), f)
    n = train_x.shape[0]
    per_epoch = n // r["batch"]
    total = per_epoch * r["epochs"]
    step = 0
    best_val = -1.0
    log = open(out_dir / f"{name}.jsonl", "w")
    began = time.time()
    for epoch in range(1, r["epochs"] + 1):
        if r.get("max_seconds") and time.time() - began > r["max_seconds"]:
            break  # the lent machine's time is short: keep what the finished epochs gave
        start = time.time()
        net.train()
        order = torch.randperm(n, device=dev, generator=gen)
        correct = seen = 0
        loss_sum = torch.zeros((), device=dev)
        for b in range(per_epoch):
            idx = order[b * r["batch"]:(b + 1) * r["batch"]]
            faces = blur_half(train_x[idx], r["blur_aug"], gen) if r["blur_aug"] > 0 else train_x[idx]
            x, y = augment(faces, r, gen).contiguous(memory_format=torch.channels_last), train_y[idx]
            for g in opt.param_groups:
                g["lr"] = lr_at(r, step, total, per_epoch)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                if r["mixup"] > 0:
                    lam = float(np.random.default_rng(step).beta(r["mixup"], r["mixup"]))
                    perm = torch.randperm(x.shape[0], device=dev, generator=gen)
                    logits = net(lam * x + (1 - lam) * x[perm])
                    loss = lam * F.cross_entropy(logits.float(), y, label_smoothing=r["label_smoothing"]) + (1 - lam) * F.cross_entropy(logits.float(), y[perm], label_smoothing=r["label_smoothing"])
                elif teachers:
                    logits = net(x)
                    probs = teacher_probs(teachers, x, r["kd_temperature"]) if r["kd_online"] else soft[idx]
                    ls = r["label_smoothing"]
                    target = (1 - r["kd_alpha"]) * (F.one_hot(y, 7).float() * (1 - ls) + ls / 7) + r["kd_alpha"] * probs
                    loss = (-(target * logits.float().log_softmax(1)).sum(1) * class_w[y]).mean()
                else:
                    logits = net(x)
                    loss = F.cross_entropy(logits.float(), y, label_smoothing=r["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ema.update_parameters(net)
            step += 1
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == y).sum()
            seen += y.shape[0]
        val = evaluate(net, val_x, val_y)
        jittered = evaluate(net, val_x_jittered, val_y)
        averaged = evaluate(ema.module, val_x, val_y)
        row = dict(epoch=epoch, train_loss=float(loss_sum) / per_epoch, train_accuracy=float(correct) / seen,
                   val_accuracy=val["none"], val_accuracy_flip=val["flip"], val_macro_f1=val["macro_f1"],
                   val_jittered_flip=jittered["flip"], val_ema=averaged["none"], val_ema_flip=averaged["flip"],
                   val_ema_macro_f1=averaged["macro_f1"], lr=lr_at(r, step - 1, total, per_epoch), seconds=time.time() - start)
        log.write(json.dumps(row) + "\n")
        log.flush()
        if val["none"] > best_val:
            best_val = val["none"]
            save_ferlite(net, r, out_dir / f"{name}.safetensors", best_val)
    torch.save(net.state_dict(), out_dir / f"{name}.pt")


def network_config(r):
    """The recipe's network as ferlite's NetworkConfig (src/model.rs): the paper preset unless
    the recipe widens it."""
    paper = dict(stem_channels=32, stage_channels=[32, 64, 128], hidden_units=380, classes=7)
    return {**paper, **(r["net"] or {}), "stage_dropout": r["stage_dropout"], "head_dropout": r["head_dropout"],
            "input_blur_sigma": r["blur"]}


def load_teacher(name_or_path, out_dir):
    """A teacher: a recipe of this run (its best epoch) or a ferlite weights file."""
    from torch_model import load_ferlite

    path = out_dir / f"{name_or_path}.safetensors" if name_or_path in RECIPES else Path(name_or_path)
    return load_ferlite(str(path))[0]


def teacher_probs(teachers, x, temperature=1.0):
    """Softmax (at the temperature) of each teacher on the faces and their mirror images,
    averaged: the soft targets."""
    import torch

    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        out = []
        for chunk in x.split(4096):
            p = sum((t(chunk).float() / temperature).softmax(1) + (t(chunk.flip(3)).float() / temperature).softmax(1)
                    for t in teachers)
            out.append(p / (2 * len(teachers)))
    return torch.cat(out)


def teacher_val(teachers, x, y):
    return (teacher_probs(teachers, x).argmax(1) == y).float().mean().item()


def save_ferlite(net, r, path, val_accuracy):
    """The network as a ferlite weights file (the format load_ferlite reads), so ferlite can
    evaluate it on photos or use it as a teacher."""
    from safetensors.torch import save_file

    metadata = {"format": "ferlite-weights-1", "ferlite.network": json.dumps(network_config(r), separators=(",", ":")),
                "ferlite.val_accuracy": str(val_accuracy)}
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(tensors, str(path), metadata=metadata)


def evaluate(net, x, y):
    import torch

    net.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        p = net(x.contiguous(memory_format=torch.channels_last)).float().softmax(1)
        pf = net(x.flip(3).contiguous(memory_format=torch.channels_last)).float().softmax(1)
    none, flip = p.argmax(1), ((p + pf) / 2).argmax(1)
    f1 = []
    for c in range(7):
        tp = ((none == c) & (y == c)).sum().item()
        prec = tp / max((none == c).sum().item(), 1)
        rec = tp / max((y == c).sum().item(), 1)
        f1.append(0 if tp == 0 else 2 * prec * rec / (prec + rec))
    return dict(none=(none == y).float().mean().item(), flip=(flip == y).float().mean().item(), macro_f1=sum(f1) / 7)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, help="override every recipe's epoch count")
    ap.add_argument("--only", help="comma-separated recipe names (default: all)")
    ap.add_argument("--seed", type=int, help="override every recipe's seed (a second seed tells a gain from noise)")
    ap.add_argument("--smoke", action="store_true", help="1 epoch of each: checks the script runs, times an epoch")
    ap.add_argument("--max-seconds", type=float, help="stop each recipe's training after this long (the best epoch so far is kept)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    train_x, train_y = load_split(args.data / "train")
    val_x, val_y = load_split(args.data / "val")
    data_file = Path("/tmp/fer2013-arrays.npz")
    np.savez(data_file, train_x=train_x, train_y=train_y, val_x=val_x, val_y=val_y)
    print(f"loaded {len(train_y)} train / {len(val_y)} val faces in {time.time() - start:.0f} s", flush=True)
    names = args.only.split(",") if args.only else list(RECIPES)
    recipes = {n: {**BASE, **RECIPES[n]} for n in names}
    for r in recipes.values():
        if args.epochs:
            r["epochs"] = args.epochs
        if args.seed is not None:
            r["seed"] = args.seed
        if args.smoke:
            r["epochs"] = 1
        r["max_seconds"] = args.max_seconds
    ctx = mp.get_context("spawn")
    # Students whose teacher is a recipe of this run train after it, in a second phase.
    later = {n for n, r in recipes.items() if any(t in recipes for t in r["teacher"] or [])}
    procs = {}
    for phase in ([n for n in recipes if n not in later], [n for n in recipes if n in later]):
        for n in phase:
            procs[n] = ctx.Process(target=run_recipe, args=(n, recipes[n], data_file, args.out))
            procs[n].start()
        for n in phase:
            procs[n].join()
        if phase:
            print(f"phase of {len(phase)} done at {time.time() - start:.0f} s", flush=True)
    print(f"\n| recipe | epochs run | best val (no TTA) | at epoch | flip TTA there | macro-F1 | train acc | s/epoch |")
    print("|---|---|---|---|---|---|---|---|")
    for n, p in procs.items():
        rows = [json.loads(l) for l in open(args.out / f"{n}.jsonl")] if (args.out / f"{n}.jsonl").exists() else []
        if not rows:
            print(f"| {n} | 0 (exit {p.exitcode}) | | | | | | |")
            continue
        best = max(rows, key=lambda r: r["val_accuracy"])
        print(f"| {n} | {len(rows)} | {best['val_accuracy']:.2%} | {best['epoch']} | {best['val_accuracy_flip']:.2%} | "
              f"{best['val_macro_f1']:.3f} | {best['train_accuracy']:.2%} | {np.median([r['seconds'] for r in rows]):.1f} |")
    print(f"total {time.time() - start:.0f} s")
    # The lent machine returns only a few files from $OUT: every log in one archive.
    with tarfile.open(args.out / "logs.tar.gz", "w:gz") as logs:
        for path in sorted(args.out.glob("*.json*")):
            logs.add(path, arcname=path.name)


if __name__ == "__main__":
    main()
