"""The Inception-v3 network used by the Frechet Inception Distance (FID), in plain torch.

The architecture is Inception-v3 (Szegedy et al. 2016, "Rethinking the Inception Architecture for
Computer Vision", arXiv:1512.00567) in the variant that the original TensorFlow FID code
(Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", arXiv:1706.08500) runs, i.e. the 2015-12-05 TensorFlow graph. It differs from
torchvision's ``Inception3`` in three ways:

* the classifier has 1008 outputs instead of 1000 (and there is no auxiliary classifier);
* the 3x3 average pools inside the mixed blocks ignore the zero padding
  (``count_include_pad=False``), as TensorFlow's average pool does;
* the pool branch of the last mixed block (``Mixed_7c``) uses a 3x3 *max* pool.

Module and tensor names follow torchvision / pytorch-fid, so the PyTorch port of the TensorFlow
weights, ``pt_inception-2015-12-05-6726825d.pth`` (distributed with pytorch-fid), loads with
``strict=True``. **Only with that weights file do the features reproduce the standard FID and
Inception Score**; a randomly initialised :class:`FIDInceptionV3` is useful for tests only, and any
other weights give numbers that are not comparable with published ones. Small numerical
differences from the TensorFlow reference remain (PyTorch's bilinear resize differs from
TensorFlow 1.x's), exactly as for pytorch-fid.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.download import file_digest
from deepgen.errors import CheckpointError, DataError

__all__ = [
    "FID_WEIGHTS_NAME",
    "FID_WEIGHTS_SHA256",
    "FID_WEIGHTS_URL",
    "FIDInceptionV3",
    "download_fid_inception",
    "load_fid_inception",
]

FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
#: Release asset that pytorch-fid downloads (``FID_WEIGHTS_URL`` in its ``inception.py``).
FID_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_NAME}"
#: SHA-256 of that file (95,628,359 bytes); the ``6726825d`` in its name is the start of this digest.
FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"

INPUT_SIZE = 299


def _avg_pool_no_pad(x: torch.Tensor) -> torch.Tensor:
    """3x3 stride-1 average pool whose border windows average only the real pixels (TF semantics)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class BasicConv2d(nn.Module):
    """Convolution without bias, BatchNorm (eps=1e-3) and ReLU: (N, C_in, H, W) -> (N, C_out, H', W')."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class FIDInceptionA(nn.Module):
    """35x35 mixed block: (N, C_in, H, W) -> (N, 224 + pool_features, H, W); pad-free average pool."""

    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = self.branch5x5_2(self.branch5x5_1(x))
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([self.branch1x1(x), wide, deep, pooled], dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17: (N, C_in, H, W) -> (N, 480 + C_in, (H-3)//2 + 1, (W-3)//2 + 1)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), deep, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class FIDInceptionC(nn.Module):
    """17x17 block with factorised 7x7 convolutions: (N, C_in, H, W) -> (N, 768, H, W)."""

    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        row = {"kernel_size": (1, 7), "padding": (0, 3)}  # 1x7 conv keeping the spatial size
        col = {"kernel_size": (7, 1), "padding": (3, 0)}  # 7x1 conv keeping the spatial size
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, **row)
        self.branch7x7_3 = BasicConv2d(c7, 192, **col)
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, **row)
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, **col)
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, **row)
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = layer(double)
        pooled = self.branch_pool(_avg_pool_no_pad(x))
        return torch.cat([self.branch1x1(x), single, double, pooled], dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8: (N, C_in, H, W) -> (N, 512 + C_in, (H-3)//2 + 1, (W-3)//2 + 1)."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        short = self.branch3x3_2(self.branch3x3_1(x))
        long = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            long = layer(long)
        return torch.cat([short, long, F.max_pool2d(x, kernel_size=3, stride=2)], dim=1)


class FIDInceptionE(nn.Module):
    """8x8 block with split 1x3/3x1 convolutions: (N, C_in, H, W) -> (N, 2048, H, W).

    ``pool`` selects the pool branch: ``"avg"`` (pad-free 3x3 average, ``Mixed_7b``) or ``"max"``
    (3x3 max, ``Mixed_7c``; a quirk of the TensorFlow graph that the FID weights depend on).
    """

    def __init__(self, in_channels: int, pool: str = "avg"):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_no_pad(x)
        parts = [
            self.branch1x1(x),
            self.branch3x3_2a(s),
            self.branch3x3_2b(s),
            self.branch3x3dbl_3a(d),
            self.branch3x3dbl_3b(d),
            self.branch_pool(pooled),
        ]
        return torch.cat(parts, dim=1)


class FIDInceptionE_1(FIDInceptionE):
    """``Mixed_7b``: :class:`FIDInceptionE` with the pad-free average pool."""

    def __init__(self, in_channels: int):
        super().__init__(in_channels, pool="avg")


class FIDInceptionE_2(FIDInceptionE):
    """``Mixed_7c``: :class:`FIDInceptionE` with the 3x3 max pool."""

    def __init__(self, in_channels: int):
        super().__init__(in_channels, pool="max")


class FIDInceptionV3(nn.Module):
    """FID Inception-v3: images in [0, 1] -> 2048-d pool3 features or 1008 logits.

    Input ``x`` has shape (N, C, H, W) with C = 1 (repeated to RGB) or 3 and any H, W; it is
    resized to 299x299 (bilinear, ``align_corners=False``) and mapped to [-1, 1] by ``2x - 1``.
    The module is created in eval mode (BatchNorm uses its running statistics); weights are random
    until loaded -- use :func:`load_fid_inception` for the standard FID network.
    """

    feature_dim = 2048
    #: images per forward pass in :func:`deepgen.metrics.features.extract` (299x299 activations are large)
    eval_batch_size = 50
    num_classes = 1008

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE_1(1280)
        self.Mixed_7c = FIDInceptionE_2(2048)
        self.fc = nn.Linear(self.feature_dim, self.num_classes)
        self.eval()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1 or 3, H, W) in [0, 1] -> (N, 3, 299, 299) in [-1, 1], in the weights' dtype/device."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise DataError(f"FID Inception expects images of shape (N, 1 or 3, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise DataError(f"FID Inception expects float images in [0, 1], got dtype {x.dtype}")
        x = x.to(device=self.fc.weight.device, dtype=self.fc.weight.dtype)
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return 2.0 * x - 1.0

    def _pool3(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 299, 299) preprocessed -> (N, 2048) globally average-pooled Mixed_7c output."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (N, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (N, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 192, 35, 35)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d):
            x = block(x)  # (N, 256 | 288 | 288, 35, 35)
        x = self.Mixed_6a(x)  # (N, 768, 17, 17)
        for block in (self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e):
            x = block(x)  # (N, 768, 17, 17)
        x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))  # (N, 2048, 8, 8)
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images in [0, 1] -> (N, 2048) pool3 features (the FID features)."""
        return self._pool3(self.preprocess(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images in [0, 1] -> (N, 1008) classifier logits (for the Inception Score)."""
        return self.fc(self.forward(x))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One pass giving both: ((N, 2048) pool3 features, (N, 1008) logits)."""
        features = self.forward(x)
        return features, self.fc(features)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _checked_state_dict(model: nn.Module, state, path: Path) -> dict[str, torch.Tensor]:
    """Compare ``state`` with ``model.state_dict()`` by key and shape; CheckpointError on a mismatch.

    ``*.num_batches_tracked`` buffers may be absent (the TF-converted file has none): they are filled
    with 0, which does not affect evaluation-mode outputs.
    """
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(state).__name__})")
    expected = model.state_dict()
    state = dict(state)
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        k for k in expected if k in state and (not torch.is_tensor(state[k]) or state[k].shape != expected[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:3])}{more}")
        raise CheckpointError(f"{path} is not an FID Inception-v3 state dict; {'; '.join(parts)}")
    return state


def load_fid_inception(path: str | os.PathLike, *, check_hash: bool = True) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` from the weights file at ``path``; eval mode, no gradients.

    With ``check_hash`` the file's SHA-256 must equal :data:`FID_WEIGHTS_SHA256`, which guarantees the
    standard FID network. Raises :class:`~deepgen.errors.CheckpointError` (one-line message) for a
    missing or unreadable file, a wrong checksum, or a state dict with wrong keys or shapes.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"FID Inception weights not found at {path}; download {FID_WEIGHTS_URL} "
            "(or call deepgen.metrics.inception.download_fid_inception)"
        )
    if check_hash:
        digest = file_digest(path, "sha256")
        if digest != FID_WEIGHTS_SHA256:
            raise CheckpointError(
                f"{path} has SHA-256 {digest[:16]}..., expected {FID_WEIGHTS_SHA256[:16]}... of "
                f"{FID_WEIGHTS_NAME}; re-download it, or pass check_hash=False for other weights"
            )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types
        raise CheckpointError(f"cannot read FID Inception weights {path}: {_first_line(err)}") from err
    model = FIDInceptionV3()
    state = _checked_state_dict(model, state, path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"cannot load FID Inception weights {path}: {_first_line(err)}") from err
    return model.eval().requires_grad_(False)


def download_fid_inception(dest_dir: str | os.PathLike, *, timeout: float = 60.0) -> Path:
    """Download :data:`FID_WEIGHTS_URL` into ``dest_dir`` (checksummed); returns the file's path.

    A file already there with the right SHA-256 is reused; see
    :func:`deepgen.download.download_verified`. Needs internet access.
    """
    from deepgen.download import download_verified

    return download_verified([FID_WEIGHTS_URL], Path(dest_dir) / FID_WEIGHTS_NAME, FID_WEIGHTS_SHA256, timeout=timeout)
