"""Differentiable augmentation of real and fake images (DiffAugment; Zhao et al., 2020, arXiv:2006.10738).

The discriminator sees T(x) for real images and T(G(z)) for fakes, with the *same* random family T
applied to both and gradients flowing through T into the generator. Augmenting only the reals would
teach the generator to produce augmented images; augmenting both, differentiably, lets a
discriminator trained on little data stop memorising it without leaking the augmentation into
the samples. Each transform draws its parameters per example (every channel of an image moves
alike):

* ``color``: brightness (add U(-1/4, 1/4)), saturation (scale the deviation from the channel mean
  by U(0, 2); a no-op on one channel) and contrast (scale the deviation from the image mean by
  U(1/2, 3/2)). The paper's brightness range, U(-1/2, 1/2), is for data in [-1, 1]; deepgen's
  images live in [0, 1], so it is halved.
* ``translation``: shift by whole pixels, up to 1/8 of the side in each direction, filling with 0.
* ``cutout``: zero a square of half the side at a random centre.

>>> x = torch.rand(4, 1, 8, 8)
>>> diff_augment(x, ("translation", "cutout"), torch.Generator().manual_seed(0)).shape
torch.Size([4, 1, 8, 8])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")


def _u(x: torch.Tensor, generator, shape=None) -> torch.Tensor:
    shape = (len(x), 1, 1, 1) if shape is None else shape
    return torch.rand(shape, device=x.device, dtype=x.dtype, generator=generator)


def color(x: torch.Tensor, generator=None) -> torch.Tensor:
    x = x + (_u(x, generator) - 0.5) * 0.5
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (_u(x, generator) * 2) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (_u(x, generator) + 0.5) + mean


def translation(x: torch.Tensor, generator=None, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    kw = dict(device=x.device, generator=generator)
    ty = torch.randint(-sh, sh + 1, (b, 1, 1), **kw)
    tx = torch.randint(-sw, sw + 1, (b, 1, 1), **kw)
    gb, gy, gx = torch.meshgrid(
        torch.arange(b, device=x.device),
        torch.arange(h, device=x.device),
        torch.arange(w, device=x.device),
        indexing="ij",
    )
    gy = (gy + ty + 1).clamp(0, h + 1)  # index into the zero-padded image: 0 and h + 1 are the padding
    gx = (gx + tx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[gb, gy, gx].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, generator=None, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    kw = dict(device=x.device, generator=generator)
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), **kw)
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), **kw)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= cy - ch // 2) & (ys < cy - ch // 2 + ch) & (xs >= cx - cw // 2) & (xs < cx - cw // 2 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def check_policy(policy: Sequence[str]) -> tuple[str, ...]:
    """The policy as a tuple, checked against :data:`POLICIES`."""
    policy = tuple(p for p in policy if p)
    bad = [p for p in policy if p not in TRANSFORMS]
    if bad:
        raise ValueError(f"unknown DiffAugment transform {bad[0]!r}; valid: {', '.join(POLICIES)}")
    return policy


def diff_augment(x: torch.Tensor, policy: Sequence[str], generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the transforms of ``policy`` in order to images ``x`` (B, C, H, W), differentiably."""
    for name in check_policy(policy):
        x = TRANSFORMS[name](x, generator)
    return x
