"""The denoiser for vector data (2-D toys, tabular rows): an MLP conditioned on time and class.

Images use :class:`deepgen.nn.UNet`; vectors use :class:`TimeMLP`, the small network of the
toy-data experiments of diffusion papers (e.g. Ho et al. 2020, arXiv:2006.11239, trained on 2-D
Swiss rolls in their ablations): the time goes through the same sinusoidal features as the UNet's
(Vaswani et al. 2017, arXiv:1706.03762) and a two-layer SiLU MLP, a class label through a learned
embedding with one extra "null" row for classifier-free guidance (Ho & Salimans 2022,
arXiv:2207.12598), and their sum is projected into every hidden layer::

    emb = MLP(sinusoid(t)) [+ E[y]]
    h_0 = W_in x
    h_{i+1} = W_i SiLU(h_i + P_i emb)            (i = 0 .. n-2)
    out = W_out SiLU(h_{n-1} + P_{n-1} emb)      (W_out zero-initialised: the network starts at 0)

>>> net = TimeMLP(2, 2, hidden=(32, 32), num_classes=3)
>>> net(torch.randn(5, 2), torch.arange(5.0), torch.tensor([0, 1, 2, 3, 3])).shape
torch.Size([5, 2])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.errors import ConfigError, DataError
from deepgen.nn.unet import timestep_embedding

#: Sinusoidal features of the time (as the UNet's first channel count: 32 by default).
TIME_FEATURES = 64


class TimeMLP(nn.Module):
    """(B, D) inputs, (B,) float times and optional (B,) labels -> (B, out_dim).

    Args:
        in_dim: D.
        out_dim: outputs per example (D, or 2D with a learned variance).
        hidden: hidden sizes (at least one).
        dropout: dropout before each hidden layer's linear map.
        num_classes: labels 0..C-1 plus the null label C (classifier-free guidance); None: unconditional.

    Times are on the UNet's scale (see :mod:`deepgen.nn.unet`): hundreds of units between the
    clean and the noisiest time.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: tuple[int, ...] = (256, 256, 256),
        *,
        dropout: float = 0.0,
        num_classes: int | None = None,
    ):
        super().__init__()
        if not hidden or min(hidden) < 1:
            raise ConfigError(f"TimeMLP hidden sizes must be one or more positive numbers, got {hidden}")
        emb = hidden[0]
        self.num_classes = num_classes
        self.time_mlp = nn.Sequential(nn.Linear(TIME_FEATURES, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.class_embedding = nn.Embedding(num_classes + 1, emb) if num_classes else None
        self.inp = nn.Linear(in_dim, hidden[0])
        self.projs = nn.ModuleList(nn.Linear(emb, h) for h in hidden)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(hidden[:-1], hidden[1:]))
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden[-1], out_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def embed(self, t: torch.Tensor, y: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(B, E) embedding of times (B,) and labels (B,) or None (the null label)."""
        if t.shape != (batch,):
            raise DataError(f"TimeMLP: t must have shape ({batch},), got {tuple(t.shape)}")
        emb = self.time_mlp(timestep_embedding(t, TIME_FEATURES).to(self.inp.weight.dtype))
        if self.class_embedding is None:
            if y is not None:
                raise ConfigError("TimeMLP: unconditional (num_classes=None): class labels y are not used")
            return emb
        if y is None:
            return emb + self.class_embedding.weight[self.num_classes]
        return emb + self.class_embedding(y)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = F.silu(self.embed(t, y, x.shape[0]))
        h = self.inp(x)
        for proj, layer in zip(self.projs, self.layers):
            h = layer(self.dropout(F.silu(h + proj(emb))))
        return self.out(self.dropout(F.silu(h + self.projs[-1](emb))))
