"""Masked linear and convolution layers, and the masks of MADE and PixelCNN.

The mask is a registered buffer multiplied into the weight *inside* ``forward``
(``F.linear(x, weight * mask, bias)``), never written into the stored weight. Writing it in place
(``weight.data *= mask``) zeroes those weights for good: a later :meth:`MaskedLinear.set_mask` (MADE's
connectivity-agnostic training resamples masks) would then switch on connections that had silently
lost their values. With the mask applied in ``forward``, the gradient at a masked entry is exactly
zero, so optimisers without weight decay leave masked weights untouched (weight decay still shrinks
them, harmlessly: they do not affect the output while masked).

* MADE (Germain, Gregor, Murray, Larochelle, 2015, arXiv:1502.03509): every unit gets a degree;
  a hidden unit of degree m may see inputs of degree <= m, and an output of degree d may see only
  units of degree < d (strict), so output d depends on inputs 1..d-1 of the ordering.
  :func:`made_degrees` draws the degrees and :func:`made_masks` turns them into layer masks.
* PixelCNN (van den Oord, Kalchbrenner, Kavukcuoglu, 2016, arXiv:1601.06759): a k x k kernel sees
  the rows above and the pixels to the left; mask ``"A"`` (first layer) excludes the centre pixel,
  mask ``"B"`` (later layers) includes it. :func:`pixelcnn_mask` builds both, optionally with RGB
  channel groups (R sees nothing of the current pixel, G sees R, B sees R and G).

>>> layer = MaskedLinear(3, 2, torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
>>> layer(torch.zeros(4, 3)).shape
torch.Size([4, 2])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MaskedLinear(nn.Linear):
    """``y = x (W * M)^T + b`` with a fixed 0/1 mask ``M`` of shape (out_features, in_features).

    Input (B, in_features) -> (B, out_features). ``mask=None`` starts fully connected.
    """

    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor | None = None, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("mask", torch.ones(out_features, in_features))
        if mask is not None:
            self.set_mask(mask)

    def set_mask(self, mask: torch.Tensor) -> None:
        """Replace the mask (same shape as the weight); the weights themselves are not touched."""
        mask = torch.as_tensor(mask)
        if mask.shape != self.weight.shape:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match weight shape {tuple(self.weight.shape)}")
        self.mask.copy_(mask.to(self.mask))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MaskedConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose kernel is multiplied by a 0/1 mask in ``forward``.

    ``mask`` has the weight's shape (out, in / groups, kh, kw) or broadcasts to it (a (kh, kw)
    spatial mask); ``None`` starts unmasked. Other arguments are those of ``nn.Conv2d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, mask: torch.Tensor | None = None, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        self.register_buffer("mask", torch.ones_like(self.weight))
        if mask is not None:
            self.set_mask(mask)

    def set_mask(self, mask: torch.Tensor) -> None:
        """Replace the mask (broadcast to the weight's shape); the weights themselves are not touched."""
        mask = torch.as_tensor(mask)
        try:
            expanded = mask.to(self.mask).expand_as(self.weight)
        except RuntimeError:
            raise ValueError(
                f"mask shape {tuple(mask.shape)} does not broadcast to weight shape {tuple(self.weight.shape)}"
            ) from None
        self.mask.copy_(expanded)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)


# -- MADE ----------------------------------------------------------------------------------------


def made_degrees(
    num_inputs: int,
    hidden: Sequence[int],
    *,
    order: Sequence[int] | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    strategy: str = "random",
) -> list[torch.Tensor]:
    """Degrees of the inputs and of each hidden layer of a MADE.

    Args:
        num_inputs: D.
        hidden: hidden layer sizes.
        order: the autoregressive ordering, a permutation of 0..D-1 listing the inputs in the order
            they are generated (``order[0]`` comes first); None: 0, 1, ..., D-1. Input ``order[i]``
            gets degree ``i + 1``.
        generator: source of the random hidden degrees (``strategy="random"``).
        strategy: ``"random"`` draws each hidden degree uniformly from ``[min of the previous
            layer's degrees, D - 1]`` as in the paper; ``"cyclic"`` assigns them in turn, a
            deterministic choice that uses every degree evenly.

    Returns:
        ``[m0 (D,), m1 (hidden[0],), ...]``, long tensors; degrees of inputs are 1..D.
    """
    d = num_inputs
    m0 = torch.empty(d, dtype=torch.long)
    if order is None:
        order = torch.arange(d)
    order = torch.as_tensor(order, dtype=torch.long)
    if sorted(order.tolist()) != list(range(d)):
        raise ValueError(f"order must be a permutation of 0..{d - 1}, got {order.tolist()}")
    m0[order] = torch.arange(1, d + 1)
    degrees = [m0]
    for h in hidden:
        # a unit of degree D - 1 or more would connect to no output; D = 1 leaves only degree 0
        low = min(int(degrees[-1].min()), d - 1)
        if strategy == "random":
            m = torch.randint(low, d, (h,), generator=generator) if d > low else torch.full((h,), low)
        elif strategy == "cyclic":
            m = low + torch.arange(h) % max(1, d - low)
        else:
            raise ValueError(f"unknown strategy {strategy!r}; valid: random, cyclic")
        degrees.append(m.long())
    return degrees


def made_masks(degrees: Sequence[torch.Tensor], out_degrees: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Masks (float 0/1, shape (out, in)) for each linear layer of a MADE.

    Hidden layers: ``M[k, j] = 1{m_l(k) >= m_{l-1}(j)}``. Output layer: ``M[i, j] = 1{d(i) > m_L(j)}``
    (strict), so output i depends only on inputs of degree < d(i). ``out_degrees`` defaults to the
    input degrees (one output per input); for P outputs per input pass e.g. ``m0.repeat(P)``
    (outputs laid out parameter-major) or ``m0.repeat_interleave(P)`` (input-major).
    """
    out_degrees = degrees[0] if out_degrees is None else torch.as_tensor(out_degrees)
    masks = [(cur[:, None] >= prev[None, :]).float() for prev, cur in zip(degrees[:-1], degrees[1:])]
    masks.append((out_degrees[:, None] > degrees[-1][None, :]).float())
    return masks


# -- PixelCNN ------------------------------------------------------------------------------------


def pixelcnn_mask(
    kernel_size: int | tuple[int, int],
    mask_type: str,
    in_channels: int = 1,
    out_channels: int = 1,
    channel_groups: int = 1,
) -> torch.Tensor:
    """PixelCNN's causal kernel mask, shape (out_channels, in_channels, kh, kw), float 0/1.

    Rows above the centre and pixels left of it in the centre row are visible. At the centre pixel,
    with ``channel_groups = 1``: type ``"A"`` sees nothing, type ``"B"`` sees every channel. With
    ``channel_groups = G`` (3 for RGB), input and output channels are split into G contiguous blocks
    (channel c of C belongs to group ``c * G // C``, so an RGB input has one channel per group); at
    the centre an output of group g sees input groups < g for type A and <= g for type B, giving the
    paper's R -> G -> B conditioning within a pixel. Both channel counts must divide by G.
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"PixelCNN kernels need odd sizes to have a centre, got {kh}x{kw}")
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    if in_channels % channel_groups or out_channels % channel_groups:
        raise ValueError(
            f"channels ({in_channels} in, {out_channels} out) must divide into {channel_groups} channel groups"
        )
    mask = torch.zeros(out_channels, in_channels, kh, kw)
    ch, cw = kh // 2, kw // 2
    mask[:, :, :ch, :] = 1.0
    mask[:, :, ch, :cw] = 1.0
    g_out = torch.arange(out_channels) * channel_groups // out_channels
    g_in = torch.arange(in_channels) * channel_groups // in_channels
    centre = g_out[:, None] > g_in[None, :] if mask_type == "A" else g_out[:, None] >= g_in[None, :]
    mask[:, :, ch, cw] = centre.float()
    return mask
