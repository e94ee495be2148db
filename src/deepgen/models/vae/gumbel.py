"""VAE with discrete latents trained through the Gumbel-softmax (Concrete) relaxation (Jang, Gu &
Poole, 2017, arXiv:1611.01144; Maddison, Mnih & Teh, 2017, arXiv:1611.00712).

Generative model: z = (z_1, ..., z_N), N independent categorical variables with K classes each and
a uniform prior p(z) = K^-N; p(x|z) from a decoder that reads the N one-hot vectors, flattened.
Amortised posterior q(z|x) = prod_n Categorical(softmax(logits_n(x))).

Training maximises the relaxed objective

    E_g[log p(x | y)] - beta * KL(q(z|x) || Uniform),   y_n = softmax((logits_n + g_n) / tau)

with Gumbel noise g (``hard=True``: straight-through, the decoder sees the one-hot argmax and the
gradient is the relaxed sample's) and the discrete KL in closed form, sum_n sum_k q log(q K). The
temperature follows tau(t) = max(tau_min, tau0 * exp(-anneal_rate * t)) of the global training
step t; Jang et al. anneal tau = max(0.5, exp(-r t)) with r in {1e-5, 1e-4}, and the defaults
(N = 30, K = 10, tau0 = 1, tau_min = 0.5, r = 3e-5, which reaches 0.5 after about 23,000 steps, and
a 512-256 MLP encoder) are those of the authors' MNIST demonstration. The step is read from the
trainer (``train_step``), so a resumed run anneals exactly as an uninterrupted one.

Every reported number uses the discrete latent, never the relaxation: the ``elbo`` logged in training
is log p(x | z) - KL with z the exact one-hot draw argmax(logits + g) from the same noise (an unbiased
one-sample estimate of the true ELBO; with ``hard=False`` this costs one extra decoder pass without
gradients); :meth:`GumbelVAE.elbo`, the importance-sampled estimate (hard draws z ~ q(z|x), exact
log q and log p(z)) and :meth:`GumbelVAE.exact_log_prob` (enumeration of all K^N states, for small
latents) are likewise exact in z.

>>> import torch
>>> from deepgen.data import DataInfo
>>> model = GumbelVAE(DataInfo("bits", (6,), 2), GumbelVAEConfig(latent_vars=2, categories=3, hidden=(8,)))
>>> every_x = ((torch.arange(64).unsqueeze(1) >> torch.arange(6)) % 2).float()  # all 2^6 binary vectors
>>> round(model.exact_log_prob(every_x).logsumexp(0).exp().item(), 4)  # sums to 1 over x
1.0
>>> model.loss(every_x)["tau"]  # tau0 at step 0
1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from deepgen.config import check_positive
from deepgen.errors import ConfigError
from deepgen.models.base import DensityKind, LogLikelihood
from deepgen.models.density import LatentVariableModel
from deepgen.nn import MLP, ConvDecoder, ConvEncoder, arch_for, likelihood_head
from deepgen.nn.gumbel import gumbel_softmax, kl_categorical_uniform, sample_gumbel
from deepgen.registry import register

#: Memory budget (bytes, estimated) for one block of decoder evaluations (importance sampling and
#: enumeration), as in :mod:`deepgen.models.vae.vae`.
IS_BLOCK_BYTES = 160 * 2**20
#: The most latent states K^N that :meth:`GumbelVAE.exact_log_prob` enumerates.
EXACT_MAX_STATES = 2**16


@dataclass(frozen=True)
class GumbelVAEConfig:
    """Options of :class:`GumbelVAE`.

    Attributes:
        latent_vars: N, the number of categorical latent variables.
        categories: K, the classes of each (at least 2).
        arch: ``mlp``, ``conv`` (images only) or ``auto`` (conv for images).
        hidden: MLP hidden sizes (encoder; reversed for the decoder).
        channels: conv channels after each downsampling (encoder; reversed for the decoder).
        decoder: likelihood p(x|z): auto, bernoulli, categorical, logistic, gaussian.
        decoder_std: Gaussian decoder's standard deviation: ``shared`` or ``per-example``.
        hard: straight-through Gumbel-softmax (one-hot forward, relaxed gradient) instead of the
            relaxed sample.
        tau0: initial temperature of the relaxation.
        tau_min: the temperature's floor (at most tau0).
        anneal_rate: r in tau(t) = max(tau_min, tau0 * exp(-r t)), t the global step (0: constant).
        beta: weight of the KL term in training (the reported ELBO always uses beta = 1).
    """

    latent_vars: int = 30
    categories: int = 10
    arch: Literal["auto", "mlp", "conv"] = "auto"
    hidden: tuple[int, ...] = (512, 256)
    channels: tuple[int, ...] = (32, 64)
    decoder: Literal["auto", "bernoulli", "categorical", "logistic", "gaussian"] = "auto"
    decoder_std: Literal["shared", "per-example"] = "shared"
    hard: bool = False
    tau0: float = 1.0
    tau_min: float = 0.5
    anneal_rate: float = 3e-5
    beta: float = 1.0

    def __post_init__(self):
        check_positive(self, "latent_vars", "tau0", "tau_min", "beta")
        if self.categories < 2:
            raise ConfigError(f"GumbelVAEConfig.categories must be at least 2, got {self.categories}")
        if self.tau_min > self.tau0:
            raise ConfigError(f"GumbelVAEConfig.tau_min ({self.tau_min}) must not exceed tau0 ({self.tau0})")
        if not (self.anneal_rate >= 0 and math.isfinite(self.anneal_rate)):
            raise ConfigError(f"GumbelVAEConfig.anneal_rate must be a finite number >= 0, got {self.anneal_rate}")


@dataclass(frozen=True)
class GumbelVAESampleConfig:
    """Sampling options of :class:`GumbelVAE` (z is drawn from the uniform prior).

    Attributes:
        mean: return the decoder means E[x|z] (in [0, 1], not on the lattice, for discrete data)
            instead of draws x ~ p(x|z).
    """

    mean: bool = False


@register("gumbel-vae")
class GumbelVAE(LatentVariableModel):
    """VAE with N categorical latents of K classes, trained with the Gumbel-softmax relaxation.

    Networks: ``encoder`` (x -> N * K logits of q(z|x)) and ``decoder`` (N * K one-hot entries ->
    P parameters per data dimension), with the likelihood head ``likelihood`` giving p(x|z).
    Besides the ELBO and importance sampling, ``log_likelihood(x, method="exact")`` (or
    :meth:`exact_log_prob`) sums over all K^N latent states when there are at most
    :data:`EXACT_MAX_STATES`.
    """

    family = "vae"
    Config = GumbelVAEConfig
    SampleConfig = GumbelVAESampleConfig
    likelihood_methods = (*LatentVariableModel.likelihood_methods, "exact")
    test_options = {"latent_vars": 4, "categories": 4, "hidden": (32, 32), "channels": (8, 16)}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        self.arch = arch_for(info, cfg.arch, model=self.name)
        head = likelihood_head(info, cfg.decoder, model=self.name, std=cfg.decoder_std, min_log_std=-6.0)
        p, nk = head.params_per_dim, cfg.latent_vars * cfg.categories
        if self.arch == "conv":
            self.encoder = ConvEncoder(info.shape, nk, cfg.channels)
            self.decoder = ConvDecoder(nk, (info.shape[0] * p, *info.shape[1:]), tuple(reversed(cfg.channels)))
        else:
            self.encoder = MLP(info.dim, nk, cfg.hidden)
            self.decoder = MLP(nk, info.dim * p, tuple(reversed(cfg.hidden)))
        self.likelihood = head
        self._step = 0  # the trainer's global step, set by train_step; only the temperature reads it
        self._is_block: int | None = None

    # -- networks ----------------------------------------------------------------------------------
    def posterior_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of q(z|x), (B, N, K)."""
        return self.encoder(x).view(len(x), self.config.latent_vars, self.config.categories)

    def one_hot(self, index: torch.Tensor) -> torch.Tensor:
        """Class indices (..., N) -> the decoder's input (..., N * K) in the parameters' dtype."""
        dtype = next(self.decoder.parameters()).dtype
        return F.one_hot(index, self.config.categories).to(dtype).flatten(-2)

    def decoder_log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z), (B,), for x (B, *shape) and z (B, N * K) (one-hot or relaxed)."""
        return self.likelihood.log_prob(self.decoder(z), x)

    def temperature(self, step: int | None = None) -> float:
        """tau(t) = max(tau_min, tau0 * exp(-anneal_rate * t)) at global step t (default: the current)."""
        cfg = self.config
        t = self._step if step is None else step
        return max(cfg.tau_min, cfg.tau0 * math.exp(-cfg.anneal_rate * t))

    # -- training ----------------------------------------------------------------------------------
    def train_step(self, x, y, ctx):
        """The default step, with the temperature at the trainer's ``ctx.global_step``."""
        self._step = ctx.global_step
        return super().train_step(x, y, ctx)

    def loss(self, x, y=None):
        cfg = self.config
        logits = self.posterior_logits(x)
        tau = self.temperature()
        g = sample_gumbel(logits.shape, device=logits.device, dtype=logits.dtype)
        relaxed = gumbel_softmax(logits, tau, cfg.hard, gumbel=g)
        rec = self.decoder_log_prob(x, relaxed.flatten(1))
        kl = kl_categorical_uniform(logits)
        if cfg.hard:  # the decoder already saw the exact draw argmax(logits + g)
            rec_z = rec.detach()
        else:
            with torch.no_grad():
                rec_z = self.decoder_log_prob(x, self.one_hot((logits + g).argmax(-1)))
        loss = -(rec - cfg.beta * kl).mean() / self.info.dim
        return {"loss": loss, "elbo": (rec_z - kl).mean().detach(), "kl": kl.mean().detach(), "tau": tau}

    # -- densities ---------------------------------------------------------------------------------
    def elbo(self, x):
        """ELBO with one exact draw z ~ q(z|x) and the exact KL, (B,) nats (unbiased for the bound)."""
        logits = self.posterior_logits(x)
        z = (logits + sample_gumbel(logits.shape, device=logits.device, dtype=logits.dtype)).argmax(-1)
        return self.decoder_log_prob(x, self.one_hot(z)) - kl_categorical_uniform(logits)

    def log_importance_weights(self, x, k):
        return self._log_weights(x, self.posterior_logits(x), k, self._decodes_per_block())

    def _log_weights(self, x, logits, k: int, block: int) -> torch.Tensor:
        """(B, k) log p(x|z) + log p(z) - log q(z|x) for k exact draws z ~ q(z|x), decoding about
        ``block`` z at a time."""
        b, n, c = logits.shape
        log_q = torch.log_softmax(logits, -1).unsqueeze(1).expand(b, k, n, c)
        z = (log_q + sample_gumbel(log_q.shape, device=x.device, dtype=log_q.dtype)).argmax(-1)  # (B, k, N)
        log_qz = log_q.gather(-1, z.unsqueeze(-1)).squeeze(-1).sum(-1)
        rows = max(1, block // k)  # examples per decoder call
        log_px_z = torch.cat(
            [
                self.decoder_log_prob(
                    xb.unsqueeze(1).expand(len(xb), k, *x.shape[1:]).reshape(len(xb) * k, *x.shape[1:]),
                    self.one_hot(zb.reshape(len(xb) * k, n)),
                ).view(len(xb), k)
                for xb, zb in zip(x.split(rows), z.split(rows))
            ]
        )
        return log_px_z - n * math.log(c) - log_qz

    def log_prob_estimate(self, x, k=100, chunk=None, *, y=None):
        """Importance-sampled log p(x) (Burda et al., 2016, arXiv:1509.00519) with exact categorical
        proposals: ``(estimate (B,), stderr (B,))`` nats, in bounded memory as the Gaussian VAE's."""
        from deepgen.metrics.likelihood import logmeanexp_with_stderr

        logits = self.posterior_logits(x)
        block = self._decodes_per_block()
        chunk = chunk or max(1, block // max(1, len(x)))
        parts = [self._log_weights(x, logits, min(chunk, k - i), block) for i in range(0, k, chunk)]
        return logmeanexp_with_stderr(torch.cat(parts, 1))

    def latent_states(self) -> torch.Tensor:
        """All K^N latent states as class indices, (K^N, N), in the order of :meth:`log_joint_all`.

        Raises ConfigError when there are more than :data:`EXACT_MAX_STATES`.
        """
        n, c = self.config.latent_vars, self.config.categories
        if n * math.log(c) > math.log(EXACT_MAX_STATES) + 1e-9:
            raise ConfigError(
                f"{self.name}: exact log p(x) sums over K^N = {c}^{n} latent states, more than the "
                f"{EXACT_MAX_STATES} this model enumerates; use the ELBO or importance sampling (k > 1)"
            )
        states = torch.arange(c**n, device=self.device)
        powers = c ** torch.arange(n - 1, -1, -1, device=self.device)
        return states.unsqueeze(1) // powers % c

    def log_joint_all(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(x|z) - N log K for every latent state z, (B, K^N), decoding in blocks."""
        states = self.latent_states()
        block = self._decodes_per_block()
        cols = []
        for zb in states.split(block):
            params = self.decoder(self.one_hot(zb))  # each state decoded once, for every x
            s = len(zb)
            rows = max(1, block // s)
            cols.append(
                torch.cat(
                    [
                        self.likelihood.log_prob(
                            params.unsqueeze(0).expand(len(xb), *params.shape).reshape(len(xb) * s, *params.shape[1:]),
                            xb.unsqueeze(1).expand(len(xb), s, *x.shape[1:]).reshape(len(xb) * s, *x.shape[1:]),
                        ).view(len(xb), s)
                        for xb in x.split(rows)
                    ]
                )
            )
        n, c = self.config.latent_vars, self.config.categories
        return torch.cat(cols, 1) - n * math.log(c)

    def exact_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = logsumexp_z [log p(x|z) + log p(z)] over all K^N states, (B,) nats.

        Exact when the likelihood is (a mass on discrete data, or a density on continuous data);
        raises ConfigError for more than :data:`EXACT_MAX_STATES` states.
        """
        return torch.logsumexp(self.log_joint_all(x), 1)

    def log_likelihood(self, x, *, y=None, k=None, method=None):
        if method != "exact":
            return super().log_likelihood(x, y=y, k=k, method=method)
        self.check_labels(y, len(x), draw=False)
        kind = DensityKind.BOUND if self.likelihood.is_bound else DensityKind.EXACT
        what = f"exact sum over {self.config.categories}^{self.config.latent_vars} latent states"
        if self.likelihood.is_bound:
            what += " (of the Gaussian decoder's dequantisation bound)"
        return LogLikelihood(self.exact_log_prob(x), kind, what)

    def _decodes_per_block(self) -> int:
        """How many z to decode at once: :data:`IS_BLOCK_BYTES` over the estimated bytes per z,
        measured once by a dry run of the decoder (as :meth:`deepgen.models.vae.VAE._decodes_per_block`)."""
        if self._is_block is None:
            sizes: list[int] = [0]

            def record(module, inputs, out):
                if torch.is_tensor(out) and inputs and torch.is_tensor(inputs[0]):
                    n_in = inputs[0].numel()
                    unfolded = n_in * math.prod(module.kernel_size) if isinstance(module, torch.nn.Conv2d) else 0
                    sizes.append(n_in + out.numel() + unfolded)

            hooks = [m.register_forward_hook(record) for m in self.decoder.modules()]
            p = next(self.decoder.parameters())
            z = torch.zeros(1, self.config.latent_vars, dtype=torch.long, device=p.device)
            try:
                with torch.no_grad():
                    self.decoder(self.one_hot(z))
            finally:
                for h in hooks:
                    h.remove()
            per_z = (max(sizes) + 24 * self.info.dim) * p.element_size()
            self._is_block = max(1, IS_BLOCK_BYTES // per_z)
        return self._is_block

    # -- sampling ----------------------------------------------------------------------------------
    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        """z uniform over the K^N one-hot states, then x ~ p(x|z) (or its mean when ``options.mean``)."""
        cfg = self.config
        z = torch.randint(cfg.categories, (n, cfg.latent_vars), generator=generator, device=self.device)
        params = self.decoder(self.one_hot(z))
        return self.likelihood.mean(params) if options.mean else self.likelihood.sample(params, generator)
