"""ferlite's network (src/model.rs) in PyTorch, with the same parameter names, so a ferlite
weights file loads into it as it is. Used by reference.py (the PyTorch rows of the speed table)
and scripts/torch_recipes.py (training recipes tried on a lent GPU).

stem conv3x3(1->32) BN ReLU; three residual stages ([conv3x3 BN ReLU] x2, conv3x3 BN, + shortcut,
ReLU, maxpool 2, dropout); global average pool, fc 128->380 ReLU dropout, fc 380->7.
"""
import json

import torch
from torch import nn
import torch.nn.functional as F


class ConvBn(nn.Module):
    def __init__(self, cin, cout, kernel):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False)
        # ferlite: eps 1e-5, momentum 0.1 (src/nn/norm.rs), as PyTorch's defaults.
        self.bn = nn.BatchNorm2d(cout)
        nn.init.kaiming_normal_(self.conv.weight, nonlinearity="relu")

    def forward(self, x):
        return self.bn(self.conv(x))


class ResidualStage(nn.Module):
    def __init__(self, cin, c, dropout):
        super().__init__()
        self.a, self.b, self.c = ConvBn(cin, c, 3), ConvBn(c, c, 3), ConvBn(c, c, 3)
        self.shortcut = ConvBn(cin, c, 1) if cin != c else None
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        skip = x if self.shortcut is None else self.shortcut(x)
        y = F.relu(self.a(x))
        y = F.relu(self.b(y))
        y = F.relu(self.c(y) + skip)
        return self.dropout(F.max_pool2d(y, 2))


class Head(nn.Module):
    def __init__(self, cin, hidden, classes, dropout):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(cin, hidden), nn.Linear(hidden, classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.fc2(self.dropout(F.relu(self.fc1(x.mean((2, 3))))))


class FerliteNet(nn.Module):
    def __init__(self, stem_channels=32, stage_channels=(32, 64, 128), hidden_units=380, classes=7,
                 stage_dropout=0.1, head_dropout=0.5, **_ignored):
        super().__init__()
        self.stem = ConvBn(1, stem_channels, 3)
        cin = stem_channels
        for i, c in enumerate(stage_channels):
            setattr(self, f"stage{i + 1}", ResidualStage(cin, c, stage_dropout))
            cin = c
        self.stages = len(stage_channels)
        self.head = Head(cin, hidden_units, classes, head_dropout)

    def forward(self, x):
        y = F.relu(self.stem(x))
        for i in range(self.stages):
            y = getattr(self, f"stage{i + 1}")(y)
        return self.head(y)


def load_ferlite(path):
    """The network stored in a ferlite weights file (safetensors), in eval mode."""
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        config = json.loads(f.metadata()["ferlite.network"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    net = FerliteNet(**config)
    missing, unexpected = net.load_state_dict(tensors, strict=False)
    # num_batches_tracked is PyTorch's own counter; anything else missing is a real mismatch.
    missing = [m for m in missing if not m.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: missing {missing}, unexpected {unexpected}")
    return net.eval(), config
