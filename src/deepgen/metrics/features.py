"""Feature networks for FID/KID/precision-recall/IS on deepgen's own datasets.

The usual FID network (InceptionV3, :mod:`deepgen.metrics.inception`) needs weights that cannot be
downloaded at run time here and sees 8x8 digits as blobs. deepgen therefore ships two small domain
classifiers, trained by deepgen itself (``deepgen train-features``) with their weights inside the
package:

* ``deepgen-digits`` for (1, 8, 8) images (sklearn digits),
* ``deepgen-mnist`` for (1, 28, 28) images (MNIST and binarised MNIST).

Features are the 128-d penultimate activations; logits feed the Inception Score and label accuracy
of conditional models. Half of every training batch is dynamically binarised, so the features are
meaningful for both grey and binary images. Reports name the metric after the network, e.g.
"FID (deepgen-mnist features)": these numbers are not comparable with Inception FIDs.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.errors import CheckpointError, DataError, shorten

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHAPES = {"deepgen-digits": (1, 8, 8), "deepgen-mnist": (1, 28, 28)}
FILES = {"deepgen-digits": "digits.pt", "deepgen-mnist": "mnist.pt"}
TRAIN_DATA = {"deepgen-digits": "digits", "deepgen-mnist": "mnist"}


class DomainClassifier(nn.Module):
    """Small CNN classifier; ``features(x)`` (B, 128) and ``forward(x)`` logits (B, classes).

    Input: images (B, 1, H, W) in [0, 1], H = W = 8 or 28; three 3x3 convolutions, one hidden layer.
    """

    feature_dim = 128

    def __init__(self, shape=(1, 28, 28), num_classes: int = 10):
        super().__init__()
        c, h, _ = shape
        # (channels, pool after?) per 3x3 conv: one pooling for 8x8 digits, three for 28x28 MNIST.
        spec = [(32, False), (64, True), (64, False)] if h <= 8 else [(32, True), (64, True), (128, True)]
        layers: list[nn.Module] = []
        for w, pool in spec:
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU()]
            if pool:
                layers.append(nn.MaxPool2d(2))
            c = w
        self.shape = tuple(shape)
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            n = self.convs(torch.zeros(1, *shape)).numel()
        self.fc = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(n, self.feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.feature_dim, num_classes))
        # Set after training to 1 / RMS of the training features, so that features are O(1) per
        # dimension like Inception's and KID's kernel (x.y/d + 1)^3 is well scaled.
        self.register_buffer("feature_scale", torch.ones(()))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(self.convs(x))
        return h * self.feature_scale, self.head(h)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.fc(self.convs(x)))


def network_for(shape) -> str | None:
    """Name of the shipped feature network for images of ``shape``, or None."""
    for name, s in SHAPES.items():
        if tuple(shape) == s:
            return name
    return None


@lru_cache(maxsize=4)
def load_feature_network(name_or_path: str) -> DomainClassifier:
    """A shipped network by name (``deepgen-digits``/``deepgen-mnist``) or a saved file, in eval mode."""
    if name_or_path in FILES:
        path, shape = WEIGHTS_DIR / FILES[name_or_path], SHAPES[name_or_path]
    else:
        path, shape = Path(name_or_path), None
    if not path.is_file():
        raise CheckpointError(f"{path}: feature network weights not found (run 'deepgen train-features')")
    from deepgen.train.checkpoint import not_a_torch_file

    why = not_a_torch_file(path)
    if why:
        raise CheckpointError(f"{path}: not a deepgen feature network ({why})")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        shape = tuple(blob["shape"]) if shape is None else shape
        net = DomainClassifier(shape, blob.get("num_classes", 10))
        net.load_state_dict(blob["state_dict"])
    except Exception as e:  # noqa: BLE001 - any failure here means a bad file
        raise CheckpointError(f"{path}: not a deepgen feature network ({shorten(str(e), 120)})") from None
    return net.eval()


@torch.no_grad()
def extract(net: nn.Module, x: torch.Tensor, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, d) and logits (N, classes) of images x (N, C, H, W) in [0, 1], float32 on CPU.

    ``batch_size`` defaults to the network's ``eval_batch_size`` (small for the 299x299 Inception).
    """
    batch_size = batch_size or getattr(net, "eval_batch_size", 1000)
    feats, logits = [], []
    dev = next(net.parameters()).device
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(dev).float()
        f, lg = net.features_and_logits(xb)
        feats.append(f.cpu())
        logits.append(lg.cpu())
    return torch.cat(feats), torch.cat(logits)


def _augment(x: torch.Tensor, g: torch.Generator, max_shift: int) -> torch.Tensor:
    """Random integer translations (zero padding) and dynamic binarisation of half the batch."""
    if max_shift:
        b, _, h, w = x.shape
        pad = F.pad(x, (max_shift,) * 4)
        dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
        dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
        rows = (dy[:, None] + torch.arange(h))[:, :, None]
        cols = (dx[:, None] + torch.arange(w))[:, None, :]
        x = pad[torch.arange(b)[:, None, None], 0, rows, cols].unsqueeze(1)
    binar = torch.rand(len(x), generator=g) < 0.5
    xb = torch.bernoulli(x, generator=g)
    return torch.where(binar.view(-1, 1, 1, 1), xb, x)


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    _, logits = extract(net, x)
    return (logits.argmax(1) == y).double().mean().item()


def train_feature_network(
    name: str,
    data_dir: str | None = None,
    *,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> tuple[DomainClassifier, dict]:
    """Train ``deepgen-digits`` or ``deepgen-mnist`` on its dataset's train+val split.

    Returns the network and a report (test accuracy on grey and binarised test images, settings).
    """
    from tqdm.auto import tqdm

    from deepgen.data import DataSpec, load_dataset

    if name not in TRAIN_DATA:
        raise DataError(f"feature networks exist for {', '.join(TRAIN_DATA)}; got {name!r}")
    epochs = epochs or (60 if name == "deepgen-digits" else 8)
    ds = load_dataset(DataSpec(TRAIN_DATA[name], data_dir=data_dir))
    x = torch.cat([ds.train.x, ds.val.x])
    y = torch.cat([ds.train.y, ds.val.y])
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = DomainClassifier(ds.info.shape)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr * 3, total_steps=steps)
    shift = 1 if ds.info.shape[-1] <= 8 else 2
    t0 = time.time()
    bar = tqdm(total=steps, disable=not progress, desc=f"train {name}")
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(net(_augment(x[idx], g, shift)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    net.eval()
    with torch.no_grad():
        f = torch.cat([net.features(x[i : i + 1000]) for i in range(0, len(x), 1000)])
        net.feature_scale.fill_(1.0 / f.pow(2).mean().sqrt().clamp_min(1e-8).item())
    gb = torch.Generator().manual_seed(1234)
    report = {
        "name": name,
        "dataset": TRAIN_DATA[name],
        "train_examples": len(x),
        "test_accuracy": accuracy(net, ds.test.x, ds.test.y),
        "test_accuracy_binarized": accuracy(net, torch.bernoulli(ds.test.x, generator=gb), ds.test.y),
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "train_seconds": round(time.time() - t0, 1),
        "parameters": sum(p.numel() for p in net.parameters()),
        "torch": str(torch.__version__),
    }
    return net, report


def save_feature_network(net: DomainClassifier, path: str | Path, report: dict | None = None) -> str:
    """Write ``{"state_dict", "shape", "num_classes"}`` (weights-only loadable); returns its sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "state_dict": net.state_dict(),
        "shape": list(net.shape),
        "num_classes": net.head[-1].out_features,
        "report": report or {},
    }
    torch.save(blob, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_reports() -> dict:
    """Training reports of the shipped networks (``weights/features.json``)."""
    p = WEIGHTS_DIR / "features.json"
    return json.loads(p.read_text()) if p.exists() else {}
