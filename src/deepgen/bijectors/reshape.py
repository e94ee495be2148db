"""Shape changes of multiscale image flows: squeeze, and factoring out half of the channels.

RealNVP (Dinh et al. 2017, arXiv:1605.08803, sec. 3.5-3.6) and Glow (Kingma & Dhariwal 2018,
arXiv:1807.03039, sec. 3) build image flows in levels. Each level *squeezes* (B, C, H, W) into
(B, 4C, H/2, W/2), runs a few steps of flow, then *factors out* half of the channels: those go
straight to the latent, the other half continues to the next level. A multiscale flow therefore
spends most of its computation on a quarter, then a sixteenth, ... of the dimensions, and its
latent holds variables at every scale.

Here a level is one bijector with the data's own shape, so levels nest and the latent keeps the
data's shape (the base is N(0, I) over it):

    Compose(Squeeze(), steps..., Factor(next_level), Inverse(Squeeze()))

where :class:`Factor` passes its first channels through and applies ``next_level`` to the rest.
Glow's learned prior on the factored-out half (a Gaussian whose mean and scale are computed from
the half that continues) is an affine channel coupling placed just before the ``Factor``: with a
standard-normal base, ``z_out = (h_out - mu(h_in)) / sigma(h_in)`` *is* that prior.

>>> sq = Squeeze()
>>> z, ld = sq(torch.arange(16.0).view(1, 1, 4, 4))
>>> z.shape
torch.Size([1, 4, 2, 2])
"""

from __future__ import annotations

import torch

from deepgen.bijectors.base import Bijector, zero_log_det


class Squeeze(Bijector):
    """Space-to-depth: ``(B, C, H, W) -> (B, 4C, H/2, W/2)``, each 2x2 patch into 4 channels; log-det 0.

    Output channel ``4c + 2i + j`` holds input channel ``c`` at offset ``(i, j)`` of each patch
    (RealNVP's squeeze, Dinh et al. 2017, fig. 3). H and W must be even.
    """

    def forward(self, x, context=None):
        b, c, h, w = x.shape
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze needs even height and width, got {h}x{w}")
        z = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, 4 * c, h // 2, w // 2)
        return z, zero_log_det(x)

    def inverse(self, z, context=None):
        b, c4, h, w = z.shape
        if c4 % 4:
            raise ValueError(f"Squeeze.inverse needs a multiple of 4 channels, got {c4}")
        c = c4 // 4
        x = z.view(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c, 2 * h, 2 * w)
        return x, zero_log_det(z)


class Factor(Bijector):
    """Factor out channels: the first ``keep`` channels pass to the latent, ``inner`` transforms the rest.

    ``z = cat(x[:, :keep], inner(x[:, keep:]))``, log-det that of ``inner``. With ``inner`` the next
    level of a multiscale flow, this is RealNVP's factoring-out (sec. 3.6): the kept channels are
    already latent variables. ``context`` reaches ``inner``.
    """

    def __init__(self, keep: int, inner: Bijector):
        super().__init__()
        if keep < 1:
            raise ValueError(f"Factor must keep at least one channel, got {keep}")
        self.keep, self.inner = int(keep), inner

    def extra_repr(self) -> str:
        return f"keep={self.keep}"

    def _run(self, x, context, inverse):
        if x.shape[1] <= self.keep:
            raise ValueError(f"Factor(keep={self.keep}) needs more than {self.keep} channels, got {x.shape[1]}")
        a, b = x[:, : self.keep], x[:, self.keep :]
        b, ld = self.inner.inverse(b, context) if inverse else self.inner(b, context)
        return torch.cat([a, b], 1), ld

    def forward(self, x, context=None):
        return self._run(x, context, False)

    def inverse(self, z, context=None):
        return self._run(z, context, True)
