"""VQ tokens with an absorbing-diffusion prior: a VQ-VAE whose prior over its code grid is a discrete
diffusion that masks tokens, undone by a bidirectional transformer that predicts all masked tokens
at once (Bond-Taylor, Hessey, Sasaki, Breckon & Willcocks 2022, "Unleashing Transformers: Parallel
Token Prediction with Discrete Absorbing Diffusion for Fast High-Resolution Image Generation from
Vector-Quantized Codes", arXiv:2111.12701; the absorbing state of Austin et al. 2021, D3PM,
arXiv:2107.03006).

Forward process over a sequence of L codes z_0 in 0..K-1, with T = L steps: by step t each token has
been replaced by the mask token m = K independently with probability t / T (once masked it stays
masked); at t = T everything is masked. The reverse process starts from the all-mask sequence and, from
step t to step s < t, unmasks each masked token with probability (t - s) / t, drawing its value from
the network's p(z_0^i | z_t) (one network pass per step: tokens are predicted in parallel, so sampling
costs ``steps`` passes, not L). The evidence lower bound (Austin et al. 2021, sec. 3; Unleashing
Transformers, eq. 5) is

    log p(z_0) >= sum_{t=1..T} E_q(z_t | z_0) [ (1/t) sum_{i: z_t^i = m} log p(z_0^i | z_t) ]

:meth:`AbsorbingPrior.log_prob` evaluates it with one mask draw per t in evaluation mode (T network
passes, an unbiased estimate of the bound) and, in training mode, with one random t per example,
weighted by T (one pass, also unbiased; its negative is the training loss with ``prior_loss=elbo``, the
default). ``prior_loss=reweighted`` trains instead on the paper's reweighted objective (Unleashing
Transformers: the summed cross-entropy of the masked tokens weighted by how much of the
sequence is still visible, ``1 - t / T``), which they found to converge faster and sample better than
the high-variance T/t weighting. deepgen weights by ``1 - t / (T + 1)`` so that the all-masked step
t = T, the only input of one-step sampling, keeps a weight (1 / (T + 1)); it is not a bound, so the
logged ``prior_nll`` stays the one-step ELBO estimate of the same draw. The model's density is
then the VQ-VAE's point-mass bound with log p(z_q) replaced by this bound: still a lower bound on
log p(x), in nats. Training is VQ-VAE's two stages (``stage=autoencoder``, then ``stage=prior`` with
``--init-from RUN:autoencoder``); the prior options (``prior_d_model``, ``prior_layers``,
``prior_heads``) size the bidirectional transformer::

    deepgen train absorbing-vq --data digits --steps 2000 --out runs/avq-ae
    deepgen train absorbing-vq --data digits -o stage=prior --init-from runs/avq-ae:autoencoder --out runs/avq
    deepgen sample runs/avq -n 64 -s steps=4 --out samples.png
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from deepgen.errors import ConfigError
from deepgen.models.base import LogLikelihood
from deepgen.models.vae.vqvae import VQVAE, VQVAEConfig, VQVAESampleConfig
from deepgen.nn import TransformerBlock
from deepgen.registry import register


class AbsorbingPrior(nn.Module):
    """Absorbing diffusion over sequences of ``seq_len`` tokens in ``0..vocab_size-1`` (see the module
    docstring), denoised by a bidirectional pre-LayerNorm transformer whose input vocabulary adds the
    mask token ``vocab_size``; with ``num_classes`` a class embedding is added at every position."""

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        d_model: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        num_classes: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ConfigError(f"AbsorbingPrior: n_heads {n_heads} must divide d_model {d_model}")
        self.vocab_size, self.seq_len, self.num_classes = vocab_size, seq_len, num_classes
        self.mask_token = vocab_size
        self.token_embedding = nn.Embedding(vocab_size + 1, d_model)
        self.position_embedding = nn.Parameter(torch.randn(seq_len, d_model) * 0.02)
        self.class_embedding = nn.Embedding(num_classes, d_model) if num_classes else None
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, dropout, causal=False) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        nn.init.normal_(self.token_embedding.weight, std=0.02)

    @property
    def steps(self) -> int:
        """T, the number of diffusion steps: one per token."""
        return self.seq_len

    def forward(self, z_t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) tokens with masks -> (B, L, K) logits of p(z_0^i | z_t) at every position."""
        h = self.token_embedding(z_t) + self.position_embedding[: z_t.shape[1]]
        if self.class_embedding is not None:
            if y is None:
                raise ConfigError("AbsorbingPrior: class-conditional (num_classes set): pass labels y")
            h = h + self.class_embedding(y)[:, None]
        for block in self.blocks:
            h = block(h)
        return self.head(self.ln_f(h))

    def masked_nll(self, z0: torch.Tensor, t: torch.Tensor, y=None, generator=None) -> torch.Tensor:
        """(B,) sum over the tokens masked at step ``t`` (B,) of -log p(z_0^i | z_t), for one draw of z_t."""
        u = torch.rand(z0.shape, generator=generator, device=z0.device)
        masked = u < (t.to(torch.float64) / self.steps).to(u.dtype)[:, None]
        z_t = torch.where(masked, self.mask_token, z0)
        logp = torch.log_softmax(self(z_t, y).float(), -1).gather(-1, z0.unsqueeze(-1)).squeeze(-1)
        return -(logp * masked).sum(1)

    def training_terms(self, z0: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(t, nll)``: one uniform step t in 1..T per example (B,) and the masked tokens' summed
        -log p(z_0^i | z_t) for one draw of z_t (B,); the training objectives weight ``nll`` by t."""
        t = torch.randint(1, self.steps + 1, (len(z0),), device=z0.device)
        return t, self.masked_nll(z0, t, y)

    def reweighted_nll(self, t: torch.Tensor, nll: torch.Tensor) -> torch.Tensor:
        """(B,) Unleashing Transformers' reweighted objective for :meth:`training_terms`' draw:
        ``(1 - t / (T + 1)) nll`` (see the module docstring; not a bound)."""
        return (1 - t / (self.steps + 1)) * nll

    def log_prob(self, z0: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) an unbiased estimate of the evidence lower bound on log p(z_0 | y), nats (see the module
        docstring): every step t with one mask draw each in evaluation mode, one random t per example
        (weighted by T) in training mode."""
        T, b = self.steps, len(z0)
        if self.training:
            t, nll = self.training_terms(z0, y)
            return -T * nll / t
        total = torch.zeros(b, device=z0.device)
        for step in range(1, T + 1):
            t = torch.full((b,), step, device=z0.device)
            total = total + self.masked_nll(z0, t, y) / step
        return -total

    @torch.no_grad()
    def generate(
        self,
        n: int,
        *,
        y: torch.Tensor | None = None,
        temperature: float = 1.0,
        steps: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(n, L) codes by the reverse process in ``steps`` network passes (default T = L): from step t
        to s, each masked token is unmasked with probability (t - s) / t, its value drawn from the
        network's logits / ``temperature`` (0: the most likely value)."""
        T = self.steps
        steps = T if steps is None else steps
        if not 1 <= steps <= T:
            raise ConfigError(f"absorbing diffusion: steps must be in 1..{T} (the number of tokens), got {steps}")
        device = self.head.weight.device
        z = torch.full((n, self.seq_len), self.mask_token, dtype=torch.long, device=device)
        times = torch.linspace(T, 0, steps + 1, dtype=torch.float64).round().long().tolist()
        for t, s in zip(times[:-1], times[1:]):
            if t == s:
                continue
            masked = z == self.mask_token
            reveal = masked & (torch.rand(z.shape, generator=generator, device=device) < (t - s) / t)
            if not reveal.any():
                continue
            logits = self(z, y)
            if temperature == 0:
                values = logits.argmax(-1)
            else:
                probs = torch.softmax(logits.float() / temperature, -1)
                values = torch.multinomial(probs.view(-1, self.vocab_size), 1, generator=generator).view(z.shape)
            z = torch.where(reveal, values, z)
        return z


@dataclass(frozen=True)
class AbsorbingVQSampleConfig(VQVAESampleConfig):
    """Sampling options of :class:`AbsorbingVQ`: VQ-VAE's (temperature, mean), and ``steps``: network
    passes of the reverse process, 1..L (L codes per example; default L, one token per step on average)."""

    steps: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")


@dataclass(frozen=True)
class AbsorbingVQConfig(VQVAEConfig):
    """Options of :class:`AbsorbingVQ`: VQ-VAE's, and

    prior_loss: the prior stage's training objective: ``elbo`` (the bound, each step weighted T / t)
        or ``reweighted`` (Unleashing Transformers' weighting by the visible share, 1 - t / (T + 1)).
    """

    prior_loss: Literal["elbo", "reweighted"] = "elbo"


@register("absorbing-vq")
class AbsorbingVQ(VQVAE):
    """VQ-VAE with an absorbing-diffusion prior over its codes (Bond-Taylor et al. 2022, arXiv:2111.12701).

    See the module docstring. Options are VQ-VAE's; ``prior_*`` size the bidirectional transformer.
    """

    family = "hybrid"
    Config = AbsorbingVQConfig
    SampleConfig = AbsorbingVQSampleConfig
    density_summary = (
        "lower bound: log p(x|z_q(x)) + ELBO of the absorbing diffusion on log p(z_q(x)) "
        "(uniform prior before stage prior)"
    )
    test_sample_options = {"steps": 2}
    prior_class = AbsorbingPrior

    def log_likelihood(self, x, *, y=None, k=None, method=None) -> LogLikelihood:
        ll = super().log_likelihood(x, y=y, k=k, method=method)
        if self.config.stage != "prior":
            return ll
        text = f"point-mass bound log p(x|z_q) + absorbing-diffusion ELBO on log p(z_q) ({self.num_tokens} steps)"
        return dataclasses.replace(ll, method=text)

    def loss(self, x, y=None):
        """VQ-VAE's losses; in stage prior with ``prior_loss=reweighted``, the reweighted objective, with
        the ELBO estimate of the same draw logged as ``prior_nll`` (comparable with ``elbo`` runs)."""
        if self.config.stage != "prior" or self.config.prior_loss == "elbo":
            return super().loss(x, y)
        t, nll = self.prior.training_terms(self.codes(x), y if self.conditional else None)
        objective = self.prior.reweighted_nll(t, nll)
        bound = self.prior.steps * nll / t
        return {"loss": objective.mean() / self.info.dim, "prior_nll": bound.mean().detach()}

    def prior_codes(self, n, options, *, generator, y) -> torch.Tensor:
        return self.prior.generate(n, y=y, temperature=options.temperature, steps=options.steps, generator=generator)

    @classmethod
    def describe_sampling(cls, options=None) -> str:
        o = options or cls.SampleConfig()
        steps = f"{o.steps} steps" if o.steps else "one step per code"
        return f"absorbing diffusion, {steps}, temperature {o.temperature:g}" + (", E[x|z]" if o.mean else "")
