"""PixelCNN (van den Oord, Kalchbrenner, Kavukcuoglu, 2016, arXiv:1601.06759) and Gated PixelCNN
(van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu, 2016, arXiv:1606.05328).

Both model an image autoregressively in raster order, row by row, pixel by pixel, and within a
pixel channel by channel (R, then G given R, then B given R and G)::

    log p(x) = sum_{i, j} sum_c log p(x_{c,i,j} | x_{:, <i, :}, x_{:, i, <j}, x_{<c, i, j})

with one convolutional network whose every output sees only earlier positions, so one forward pass
gives every factor: an exact likelihood. Sampling is sequential, one network pass per position
(H * W * C passes).

* **PixelCNN** (paper sec. 3.5 and fig. 5): a k x k convolution with mask ``A`` (the centre pixel
  hidden) then residual blocks ``2h -> ReLU -> 1x1 -> h -> ReLU -> 3x3 mask B -> h -> ReLU -> 1x1
  -> 2h`` (mask ``B`` shows the centre pixel's earlier channels), then ``ReLU -> 1x1 -> ReLU -> 1x1``
  to the output distribution. The masked k x k kernel has a **blind spot**: stacked, the kernels
  never reach the pixels up and to the right of the current one beyond a growing triangle (the
  test ``tests/models/test_pixelcnn.py`` measures it through gradients).
* **Gated PixelCNN** (paper sec. 2.1-2.3 and fig. 2): a *vertical stack* of (k/2 + 1) x k
  convolutions sees every row above (through a one-row downward shift before it feeds the other
  stack) and a *horizontal stack* of 1 x (k/2 + 1) convolutions sees the pixels to the left in the
  current row, so the receptive field has no blind spot. Gated activations
  ``y = tanh(W_f * x + V_f h) . sigmoid(W_g * x + V_g h)`` with a class embedding ``h`` give class
  conditioning; the horizontal stack is residual, and skip connections from every layer feed the
  output.

Outputs through :func:`deepgen.nn.likelihood_head`: categorical over the data's levels by default
(2 binary, 17 for sklearn digits, 256 for 8-bit images, as in the paper's 256-way softmax), or the
discretised logistic (mixture) of PixelCNN++ (Salimans et al. 2017, arXiv:1701.05517) for 8-bit
images, or a Gaussian for continuous images (an exact density). With C channels (RGB) the hidden
channels are split into C groups and every mask respects them (:func:`deepgen.nn.pixelcnn_mask`).

>>> from deepgen.data import DataInfo
>>> m = GatedPixelCNN(DataInfo("digits", (1, 8, 8), 17), GatedPixelCNNConfig(channels=8, layers=2))
>>> m.log_prob(torch.zeros(3, 1, 8, 8)).shape, m.sample(2).shape
(torch.Size([3]), torch.Size([2, 1, 8, 8]))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.errors import ConfigError
from deepgen.models.autoregressive.pixel import PixelAutoregressive, PixelSampling, masked_conv
from deepgen.nn import MaskedConv2d, pixelcnn_mask
from deepgen.registry import register

__all__ = ["GatedPixelCNN", "GatedPixelCNNConfig", "PixelCNN", "PixelCNNConfig", "PixelSampling"]


# ---------------------------------------------------------------------------------------------------
# PixelCNN


@dataclass(frozen=True)
class PixelCNNConfig:
    """Options of :class:`PixelCNN`.

    channels: feature maps 2h of the residual stream (the blocks' inner width is h).
    layers: residual blocks, each with one 3x3 mask-B convolution.
    kernel: size of the first (mask A) convolution; 7 in the paper.
    output_channels: width of the two 1x1 output layers.
    likelihood: auto picks bernoulli (binary data), categorical over the levels (other discrete
        data) or gaussian (continuous); logistic and logistic-mixture are PixelCNN++'s outputs.
    components: mixture components of the logistic-mixture output.
    class_conditional: condition on the data's labels (a learned per-class bias in every block).
    """

    channels: int = 64
    layers: int = 7
    kernel: int = 7
    output_channels: int = 64
    likelihood: Literal["auto", "categorical", "bernoulli", "logistic", "logistic-mixture", "gaussian"] = "auto"
    components: int = 5
    class_conditional: bool = False

    def __post_init__(self):
        if self.channels < 2 or self.channels % 2 or self.layers < 0 or self.output_channels < 1:
            raise ConfigError(
                f"PixelCNN needs an even channels >= 2, layers >= 0 and output_channels >= 1, got "
                f"{self.channels}, {self.layers}, {self.output_channels}"
            )
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"PixelCNN kernel must be odd and positive, got {self.kernel}")
        if self.components < 1:
            raise ConfigError(f"components must be >= 1, got {self.components}")


class _ResidualBlock(nn.Module):
    """PixelCNN's residual block (fig. 5): 2h -> 1x1 -> h -> 3x3 mask B -> h -> 1x1 -> 2h, plus input."""

    def __init__(self, channels: int, groups: int, num_classes: int | None):
        super().__init__()
        h = channels // 2
        if h % groups:
            h = groups * max(1, h // groups)
        self.reduce = masked_conv(channels, h, 1, "B", groups)
        self.conv = masked_conv(h, h, 3, "B", groups)
        self.expand = masked_conv(h, channels, 1, "B", groups)
        self.embed = nn.Embedding(num_classes, h) if num_classes else None

    def forward(self, x, y=None):
        t = self.reduce(F.relu(x))
        if self.embed is not None:
            t = t + self.embed(y)[:, :, None, None]
        return x + self.expand(F.relu(self.conv(F.relu(t))))


@register("pixelcnn")
class PixelCNN(PixelAutoregressive):
    """PixelCNN (van den Oord et al. 2016, arXiv:1601.06759): masked convolutions, exact likelihood.

    Shapes: ``x`` (B, C, H, W) images; ``log_prob`` (B,) nats; ``sample(n)`` (n, C, H, W).
    ``complete(x, mask)`` fills the unobserved pixels in raster order. Has the masked kernel's blind
    spot (see the module docstring); :class:`GatedPixelCNN` does not.

    >>> from deepgen.data import DataInfo
    >>> m = PixelCNN(DataInfo("mnist-bin", (1, 8, 8), 2), PixelCNNConfig(channels=8, layers=1))
    >>> m.params(torch.zeros(2, 1, 8, 8)).shape  # one Bernoulli logit per pixel
    torch.Size([2, 1, 8, 8])
    """

    Config = PixelCNNConfig
    test_options = {"channels": 8, "layers": 1, "kernel": 3, "output_channels": 8}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        c = info.shape[0]
        p = self.likelihood.params_per_dim
        self.input = masked_conv(c, cfg.channels, cfg.kernel, "A", c)
        self.blocks = nn.ModuleList(_ResidualBlock(cfg.channels, c, self.num_classes) for _ in range(cfg.layers))
        out = c * max(1, cfg.output_channels // c)
        self.head1 = masked_conv(cfg.channels, out, 1, "B", c)
        self.head2 = masked_conv(out, c * p, 1, "B", c)

    def network_params(self, x, y):
        h = self.input(x * 2.0 - 1.0 if self.info.is_discrete else x)
        for block in self.blocks:
            h = block(h, y)
        return self.head2(F.relu(self.head1(F.relu(h))))


# ---------------------------------------------------------------------------------------------------
# Gated PixelCNN


@dataclass(frozen=True)
class GatedPixelCNNConfig:
    """Options of :class:`GatedPixelCNN`.

    channels: feature maps p of each stack (the gated convolutions produce 2p).
    layers: gated layers after the first.
    kernel: kernel width k: the vertical stack uses (k//2 + 1) x k, the horizontal 1 x (k//2 + 1);
        the first layer uses ``first_kernel`` instead.
    first_kernel: kernel width of the first layer; 7 in the paper.
    output_channels: width of the 1x1 output layer after the summed skip connections.
    likelihood: auto picks bernoulli (binary data), categorical over the levels (other discrete
        data) or gaussian (continuous); logistic and logistic-mixture are PixelCNN++'s outputs.
    components: mixture components of the logistic-mixture output.
    class_conditional: condition on the data's labels (V h in every gate, paper eq. 4).
    """

    channels: int = 64
    layers: int = 7
    kernel: int = 3
    first_kernel: int = 7
    output_channels: int = 128
    likelihood: Literal["auto", "categorical", "bernoulli", "logistic", "logistic-mixture", "gaussian"] = "auto"
    components: int = 5
    class_conditional: bool = False

    def __post_init__(self):
        if self.channels < 1 or self.layers < 0 or self.output_channels < 1:
            raise ConfigError(
                f"Gated PixelCNN needs channels >= 1, layers >= 0 and output_channels >= 1, got "
                f"{self.channels}, {self.layers}, {self.output_channels}"
            )
        for k in (self.kernel, self.first_kernel):
            if k < 1 or k % 2 == 0:
                raise ConfigError(f"Gated PixelCNN kernels must be odd and positive, got {k}")
        if self.components < 1:
            raise ConfigError(f"components must be >= 1, got {self.components}")


def _gate(t: torch.Tensor, groups: int) -> torch.Tensor:
    """tanh(first half) * sigmoid(second half) within each channel group: (B, 2p, H, W) -> (B, p, H, W).

    The masked convolutions lay out 2p outputs as G contiguous groups; each group holds its own
    tanh half then its sigmoid half, so the gate never mixes channel groups.
    """
    b, c2, h, w = t.shape
    t = t.view(b, groups, 2, c2 // (2 * groups), h, w)
    return (torch.tanh(t[:, :, 0]) * torch.sigmoid(t[:, :, 1])).reshape(b, c2 // 2, h, w)


class _GatedLayer(nn.Module):
    """One layer of both stacks (paper fig. 2). ``first`` uses mask A on the horizontal stack.

    Vertical stack: a (k//2 + 1) x k convolution over the rows up to and including the current one;
    its output, shifted down one row, feeds the horizontal stack (so that stack sees only rows above).
    Horizontal stack: a 1 x (k//2 + 1) convolution over the current pixel and those to its left
    (mask A: the current pixel's own channel and later ones hidden), gated, 1x1, residual.
    """

    def __init__(self, c_in: int, p: int, k: int, groups: int, num_classes: int | None, first: bool):
        super().__init__()
        self.k, self.groups, self.first = k, groups, first
        self.v_conv = nn.Conv2d(c_in, 2 * p, (k // 2 + 1, k))
        self.v_to_h = nn.Conv2d(2 * p, 2 * p, 1)
        h_mask = pixelcnn_mask((1, k), "A" if first else "B", c_in, 2 * p, groups)[..., : k // 2 + 1]
        self.h_conv = MaskedConv2d(c_in, 2 * p, (1, k // 2 + 1), h_mask)
        self.h_out = masked_conv(p, p, 1, "B", groups)
        self.embed = nn.Embedding(num_classes, 2 * p) if num_classes else None

    def forward(self, v, h, y=None):
        k = self.k
        v_pre = self.v_conv(F.pad(v, (k // 2, k // 2, k // 2, 0)))  # row i sees rows i - k//2 .. i
        h_pre = self.h_conv(F.pad(h, (k // 2, 0, 0, 0)))  # column j sees columns j - k//2 .. j
        shifted = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]  # row i now holds row i - 1: strictly above
        h_pre = h_pre + self.v_to_h(shifted)
        if self.embed is not None:
            cond = self.embed(y)[:, :, None, None]
            v_pre, h_pre = v_pre + cond, h_pre + cond
        v_new = _gate(v_pre, self.groups)
        gated = _gate(h_pre, self.groups)
        skip = self.h_out(gated)
        h_new = skip if self.first else h + skip
        return v_new, h_new, skip


@register("gated-pixelcnn")
class GatedPixelCNN(PixelAutoregressive):
    """Gated PixelCNN (van den Oord et al. 2016, arXiv:1606.05328): two stacks, no blind spot, class-conditional.

    Shapes as :class:`PixelCNN`. ``class_conditional=True`` makes ``log_prob(x, y)`` the exact
    log p(x | y) and ``sample(n, y=...)`` draw images of the given classes.

    >>> from deepgen.data import DataInfo
    >>> info = DataInfo("digits", (1, 8, 8), 17, num_classes=10)
    >>> m = GatedPixelCNN(info, GatedPixelCNNConfig(channels=8, layers=1, class_conditional=True))
    >>> m.sample(3, y=torch.tensor([0, 1, 2])).shape
    torch.Size([3, 1, 8, 8])
    """

    Config = GatedPixelCNNConfig
    test_options = {"channels": 8, "layers": 1, "kernel": 3, "first_kernel": 3, "output_channels": 8}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        c = info.shape[0]
        p = self.likelihood.params_per_dim
        self.layers = nn.ModuleList(
            _GatedLayer(
                c if i == 0 else cfg.channels,
                cfg.channels,
                cfg.first_kernel if i == 0 else cfg.kernel,
                c,
                self.num_classes,
                first=i == 0,
            )
            for i in range(cfg.layers + 1)
        )
        out = c * max(1, cfg.output_channels // c)
        self.head1 = masked_conv(cfg.channels, out, 1, "B", c)
        self.head2 = masked_conv(out, c * p, 1, "B", c)

    def network_params(self, x, y):
        v = h = x * 2.0 - 1.0 if self.info.is_discrete else x
        skips = 0
        for layer in self.layers:
            v, h, skip = layer(v, h, y)
            skips = skips + skip
        return self.head2(F.relu(self.head1(F.relu(skips))))
