"""Shared machinery of the raster-order image models (PixelCNN, Gated PixelCNN): the likelihood
head, the exact log-likelihood, sampling and completion one position at a time, temperature and
class conditioning (van den Oord et al. 2016, arXiv:1601.06759 and arXiv:1606.05328).

Subclasses supply only the network, :meth:`PixelAutoregressive.network_params`, whose output at
(c, i, j) must depend only on positions before it in raster order (row, column, channel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deepgen.data.base import DataInfo
from deepgen.errors import ConfigError, DataError
from deepgen.models.base import DensityKind, GenerativeModel
from deepgen.nn import MaskedConv2d, likelihood_head, pixelcnn_mask


def masked_conv(c_in: int, c_out: int, kernel: int | tuple[int, int], kind: str, groups: int) -> MaskedConv2d:
    """A 'same'-padded convolution under PixelCNN's causal mask ``kind`` ("A" or "B")."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    mask = pixelcnn_mask((kh, kw), kind, c_in, c_out, groups)
    return MaskedConv2d(c_in, c_out, (kh, kw), mask, padding=(kh // 2, kw // 2))


@dataclass(frozen=True)
class PixelSampling:
    """Sampling options of PixelCNN-family models.

    temperature: sharpness of each conditional. Categorical and Bernoulli: logits divided by it
        (0 takes the most likely value, greedy decoding). Logistic (mixture): scales multiplied by
        it (mixture weights divided by it; 0 takes the mode). Gaussian: the raw log-std shifted by
        log t (the std scaled by t well above the head's soft floor). 1 samples the model.
    """

    temperature: float = 1.0

    def __post_init__(self):
        if self.temperature < 0:
            raise ConfigError(f"temperature must be >= 0, got {self.temperature}")


class PixelAutoregressive(GenerativeModel):
    """Shared machinery of raster-order image models: head, exact log_prob, sampling and completion.

    Subclasses build ``self.net`` mapping (B, C, H, W) data and labels to (B, C * P, H, W)
    *channel-major* parameters (the P parameters of data channel c in block c, as the channel
    groups of the masks require) in :meth:`network_params`; this class reorders them to the heads'
    parameter-major layout.

    Class conditioning: with ``class_conditional=True`` in the config the model is conditional
    (``self.conditional``), takes labels in ``log_prob``/``loss``/``sample`` and needs labelled data.
    """

    family = "autoregressive"
    SampleConfig = PixelSampling
    condition_option = "class_conditional"
    #: H * W * C sequential network passes per batch of samples (784 on MNIST): a comparison draws
    #: at most this many (every row then uses the same n; ``--n-samples`` overrides)
    eval_samples = 1000
    has_exact_density = True
    density_summary = "exact (chain rule over pixels)"

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        if len(info.shape) != 3:
            raise DataError(f"{self.name} models images (C, H, W); {info.name} has shape {info.shape}")
        self.conditional = bool(cfg.class_conditional)
        if self.conditional and not info.num_classes:
            raise DataError(f"{self.name} with class_conditional needs labelled data; {info.name} has no labels")
        choice = cfg.likelihood
        if choice == "auto":
            choice = "gaussian" if not info.is_discrete else ("bernoulli" if info.is_binary else "categorical")
        kwargs = {"components": cfg.components} if choice == "logistic-mixture" else {}
        self.likelihood = likelihood_head(info, choice, model=self.name, std="per-example", **kwargs)
        c = info.shape[0]
        # one position's parameters, for sampling: a head over a single data dimension
        self.position_head = likelihood_head(
            DataInfo(info.name, (1,), info.levels), choice, model=self.name, std="per-example", **kwargs
        )
        if cfg.channels % c:
            raise ConfigError(f"{self.name}: channels ({cfg.channels}) must divide by the image's {c} channels")
        self.num_classes = info.num_classes if self.conditional else None

    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.EXACT

    def network_params(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """(B, C, H, W) -> (B, C * P, H, W), channel-major; output (c, i, j) sees only earlier positions."""
        raise NotImplementedError

    def params(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, P * C, H, W): every conditional's parameters, parameter-major."""
        out = self.network_params(x, y)
        b, _, h, w = out.shape
        c, p = self.info.shape[0], self.likelihood.params_per_dim
        return out.view(b, c, p, h, w).transpose(1, 2).reshape(b, p * c, h, w)

    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Exact log p(x) (or log p(x | y)), (B,) nats: a log mass on discrete data."""
        self.check_input(x)
        y = self.check_labels(y, len(x), draw=False)
        return self.likelihood.log_prob(self.params(x, y), x)

    def loss(self, x, y=None):
        nll = -self.log_prob(x, y).mean()
        return {"loss": nll / self.info.dim, "nll": nll.detach()}

    # -- sampling and completion ---------------------------------------------------------------------
    def _draw(self, raw: torch.Tensor, temperature: float, generator) -> torch.Tensor:
        """(B,) draws for one position from its parameters ``raw`` (B, P), tempered."""
        kind, t = self.position_head.kind, temperature
        if kind in ("bernoulli", "categorical"):
            if t == 0:
                if kind == "bernoulli":
                    return (raw[:, 0] > 0).to(raw.dtype)
                return raw.argmax(1).to(raw.dtype) / (self.info.levels - 1)
            raw = raw / t
        elif t != 1:
            raw = raw.clone()
            log_t = math.log(t) if t > 0 else -1e4  # the heads clamp the scale; t = 0 takes the mode
            if kind == "logistic":
                raw[:, 1] += log_t
            elif kind == "gaussian":
                raw[:, 1] += log_t  # per-example log-std, softly floored by the head
            else:  # logistic mixture: K weights, K means, K log-scales
                k = raw.shape[1] // 3
                raw[:, :k] = (
                    raw[:, :k] / t if t > 0 else torch.where(raw[:, :k] == raw[:, :k].amax(1, keepdim=True), 0.0, -1e4)
                )
                raw[:, 2 * k :] += log_t
        return self.position_head.sample(raw, generator=generator)[:, 0]

    def _fill(self, x, observed, y, temperature, generator) -> torch.Tensor:
        """Fill ``x`` (B, C, H, W) where ``observed`` is False, in raster order (row, column, channel).

        Only rows up to the current one are passed through the network: causal masks make the
        outputs of a row independent of every row below it, so the crop changes no number.
        """
        x = x.clone()
        c, h, w = self.info.shape
        p = self.likelihood.params_per_dim
        todo = ~observed
        for i in range(h):
            if not todo[:, :, i].any():
                continue
            for j in range(w):
                for ch in range(c):
                    free = todo[:, ch, i, j]
                    if not free.any():
                        continue
                    out = self.network_params(x[:, :, : i + 1], y)[:, :, i, j]  # (B, C * P), channel-major
                    raw = out[:, ch * p : (ch + 1) * p]
                    value = self._draw(raw, temperature, generator)
                    x[:, ch, i, j] = torch.where(free, value.to(x.dtype), x[:, ch, i, j])
        return x

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        x = torch.zeros(n, *self.info.shape, device=self.device, dtype=self.head2.weight.dtype)
        observed = torch.zeros_like(x, dtype=torch.bool)
        return self._fill(x, observed, y, options.temperature, generator)

    @torch.no_grad()
    def complete(self, x, mask, *, generator=None, y=None, **options):
        """Fill ``x`` (B, C, H, W) where ``mask`` (bool, broadcast to x; True = observed) is False.

        Each free position is drawn from p(x_pos | everything before it in raster order): observed
        values and those already filled. This is the exact conditional p(x_free | x_observed) when
        every observed position precedes every free one (e.g. the bottom half given the top half);
        otherwise observed positions later in the order are ignored when filling earlier ones (an
        approximation). Observed entries are returned unchanged in every case.
        """
        opts = self.sample_options(**options)
        self.check_input(x)
        y = self.check_labels(y, len(x), draw=False)
        observed = torch.as_tensor(mask, device=x.device).bool().expand_as(x)
        start = torch.where(observed, x, torch.zeros((), dtype=x.dtype, device=x.device))
        filled = self._fill(start, observed, y, opts.temperature, generator)
        return torch.where(observed, x, filled)

    def extra_repr(self) -> str:
        c = self.config
        cond = ", class-conditional" if self.conditional else ""
        return f"{super().extra_repr()}, channels={c.channels}, layers={c.layers}, head={self.likelihood.kind}{cond}"
