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
    #: what the head predicts: ``classify`` (class logits, which the Inception Score reads) or
    #: ``rotation`` (self-supervised: logits over 0/90/180/270 degrees, no classes)
    objective = "classify"

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
        net.objective = blob.get("objective", "classify")
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


def _augment(x: torch.Tensor, g: torch.Generator, max_shift: int, binarize: bool = True) -> torch.Tensor:
    """Random integer translations (zero padding) and dynamic binarisation of half the batch.

    Binarising half the batch makes the features meaningful for binary models' samples too; it is
    skipped for RGB images, where no model binarises.
    """
    if max_shift:
        b, _, h, w = x.shape
        pad = F.pad(x, (max_shift,) * 4)
        dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
        dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=g)
        rows = (dy[:, None] + torch.arange(h))[:, :, None]
        cols = (dx[:, None] + torch.arange(w))[:, None, :]
        x = pad[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # (b, h, w, c) -> NCHW
    if not binarize:
        return x
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
        **_run_facts(net, batch_size, lr, seed, t0),
    }
    return net, report


def _run_facts(net: nn.Module, batch_size: int, lr: float, seed: int, t0: float) -> dict:
    """What every feature-network training report records about how it was trained."""
    return {
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "train_seconds": round(time.time() - t0, 1),
        "parameters": sum(p.numel() for p in net.parameters()),
        "torch": str(torch.__version__),
    }


def save_feature_network(net: DomainClassifier, path: str | Path, report: dict | None = None) -> str:
    """Write ``{"state_dict", "shape", "num_classes"}`` (weights-only loadable); returns its sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "state_dict": net.state_dict(),
        "shape": list(net.shape),
        "num_classes": net.head[-1].out_features,
        "objective": getattr(net, "objective", "classify"),
        "report": report or {},
    }
    torch.save(blob, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_reports() -> dict:
    """Training reports of the shipped networks (``weights/features.json``)."""
    p = WEIGHTS_DIR / "features.json"
    return json.loads(p.read_text()) if p.exists() else {}


# -- feature networks for any image data (deepgen train-features --data DIR|FILE) -------------------

OBJECTIVES = ("auto", "classify", "rotation")


def _rotate(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Each image ``x[i]`` rotated by ``k[i]`` quarter turns."""
    out = x.clone()
    for q in range(1, 4):
        sel = k == q
        if sel.any():
            out[sel] = torch.rot90(x[sel], q, dims=(2, 3))
    return out


def _features(net: DomainClassifier, x: torch.Tensor) -> torch.Tensor:
    return extract(net, x)[0].double()


def knn_accuracy(f_train, y_train, f_test, y_test, k: int = 5) -> float:
    """Accuracy of a k-nearest-neighbour vote (cosine similarity) of test features among training features."""
    a = F.normalize(f_train.double(), dim=1)
    b = F.normalize(f_test.double(), dim=1)
    k = min(k, len(a))
    votes = y_train[(b @ a.T).topk(k, dim=1).indices]
    counts = F.one_hot(votes, int(y_train.max()) + 1).sum(1)
    return (counts.argmax(1) == y_test).double().mean().item()


def rotation_accuracy(net: DomainClassifier, x: torch.Tensor, turns: int) -> float:
    """Share of held-out images whose rotation (each of ``turns`` quarter-turn steps) the network names."""
    step = 4 // turns
    hits = []
    for q in range(0, 4, step):
        _, logits = extract(net, torch.rot90(x, q, dims=(2, 3)))
        hits.append(logits[:, ::step].argmax(1) == q // step)
    return torch.cat(hits).double().mean().item()


def train_features_on(
    x: torch.Tensor,
    y: torch.Tensor | None,
    x_test: torch.Tensor,
    y_test: torch.Tensor | None = None,
    *,
    objective: str = "auto",
    steps: int = 500,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    name: str = "features",
) -> tuple[DomainClassifier, dict]:
    """Train a :class:`DomainClassifier` on any images x (N, C, H, W) in [0, 1]; report its feature quality.

    ``objective``: ``classify`` (labels ``y`` (N,)), ``rotation`` (self-supervised: predict which of
    0/90/180/270 degrees an image was turned by; Gidaris, Singh & Komodakis 2018, arXiv:1803.07728;
    0/180 only for non-square images) or ``auto`` (classify when labels exist). Held-out images
    ``x_test`` measure it: test accuracy (classify) or rotation accuracy, k-NN accuracy of the
    features when held-out labels exist, and, as a sanity floor, the FID of held-out real images
    against the training images (what a perfect model scores) beside that of the same images with
    their pixels shuffled (structure gone, pixel statistics kept): good features keep the first
    small and the second large.

    >>> x = torch.rand(64, 1, 8, 8)
    >>> net, report = train_features_on(x[:48], None, x[48:], steps=2, progress=False)
    >>> report["objective"], net.features(x[:2]).shape
    ('rotation', torch.Size([2, 128]))
    """
    from tqdm.auto import tqdm

    from deepgen.metrics.fid import fid_from_features

    if objective not in OBJECTIVES:
        raise DataError(f"unknown objective {objective!r}; use {', '.join(OBJECTIVES)}")
    if objective == "auto":
        objective = "classify" if y is not None else "rotation"
    if objective == "classify" and y is None:
        raise DataError("--objective classify needs labels (named datasets, or an image folder of class subfolders)")
    if len(x) < 2 or len(x_test) < 2:
        raise DataError(f"training a feature network needs at least 2 training and 2 held-out images, got {len(x)}")
    shape = tuple(x.shape[1:])
    turns = 4 if shape[1] == shape[2] else 2
    classes = int(y.max()) + 1 if objective == "classify" else 4
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = DomainClassifier(shape, classes)
    net.objective = objective
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr * 3, total_steps=steps)
    shift = 1 if shape[-1] <= 8 else 2
    t0 = time.time()
    perm, pos = torch.randperm(len(x), generator=g), 0
    net.train()
    for _ in tqdm(range(steps), disable=not progress, desc=f"train {name} ({objective})"):
        if pos >= len(x):
            perm, pos = torch.randperm(len(x), generator=g), 0
        idx, pos = perm[pos : pos + batch_size], pos + batch_size
        xb = _augment(x[idx], g, shift, binarize=shape[0] == 1)
        if objective == "rotation":
            target = torch.randint(0, turns, (len(idx),), generator=g) * (4 // turns)
            xb = _rotate(xb, target)
        else:
            target = y[idx]
        loss = F.cross_entropy(net(xb), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        f = torch.cat([net.features(x[i : i + 1000]) for i in range(0, len(x), 1000)])
        net.feature_scale.fill_(1.0 / f.pow(2).mean().sqrt().clamp_min(1e-8).item())
    f_train, f_test = _features(net, x), _features(net, x_test)
    g_shuffle = torch.Generator().manual_seed(seed + 1)
    flat = x_test.flatten(2)
    order = torch.stack([torch.randperm(flat.shape[-1], generator=g_shuffle) for _ in range(len(flat))])
    shuffled = flat.gather(2, order[:, None, :].expand_as(flat)).view_as(x_test)
    report = {
        "name": name,
        "objective": objective,
        "shape": list(shape),
        "train_examples": len(x),
        "test_examples": len(x_test),
        "test_accuracy": accuracy(net, x_test, y_test) if objective == "classify" and y_test is not None else None,
        "rotation_accuracy": rotation_accuracy(net, x_test, turns) if objective == "rotation" else None,
        "knn_accuracy": knn_accuracy(f_train, y, f_test, y_test) if y is not None and y_test is not None else None,
        "fid_held_out": fid_from_features(f_train, f_test),
        "fid_pixel_shuffled": fid_from_features(f_train, _features(net, shuffled)),
        "steps": steps,
        **_run_facts(net, batch_size, lr, seed, t0),
    }
    return net, report
