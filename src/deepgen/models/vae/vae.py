"""Variational autoencoder (Kingma & Welling, 2014, arXiv:1312.6114; Rezende et al., 2014,
arXiv:1401.4082), with beta-VAE weighting (Higgins et al., 2017), KL warm-up (Bowman et al., 2016,
arXiv:1511.06349; Sonderby et al., 2016, arXiv:1602.02282), free bits (Kingma et al., 2016,
arXiv:1606.04934) and importance-sampled evaluation (Burda et al., 2016, arXiv:1509.00519).

Generative model p(z) = N(0, I), p(x|z) from a decoder network; amortised posterior
q(z|x) = N(mu(x), diag sigma^2(x)). Training maximises

    ELBO(x) = E_q[log p(x|z)] - beta * KL(q(z|x) || p(z))   (<= log p(x) when beta = 1)

with the reparameterisation z = mu + sigma * eps and the KL in closed form. Evaluation reports the
ELBO (a lower bound; ``method="elbo"`` averages K posterior draws per example and gives its standard
error) or the K-sample importance-weighted estimate log (1/K) sum_k p(x, z_k) / q(z_k|x), which
converges to log p(x).

Training-only changes to the KL term (the logged ``elbo`` is always the true ELBO, beta = 1, no
free bits): ``kl_warmup`` ramps its weight linearly from 0 to ``beta`` over the first steps, so the
decoder learns to use z before the KL pulls q(z|x) onto the prior (Bowman et al.'s "KL cost
annealing", Sonderby et al.'s "warm-up"); ``free_bits`` replaces each latent dimension's KL,
averaged over the batch, by max(lambda, KL_j), so no gradient pushes a dimension below lambda nats
(Kingma et al., 2016, "free bits", with one group per latent dimension).

Decoders (``decoder``) are the shared likelihood heads of :mod:`deepgen.nn.heads`: ``bernoulli``
for binary data, ``logistic`` (discretised logistic, an exact probability mass on L levels, with an
unconstrained mean as in PixelCNN++ so that the edge bins 0 and L-1 -- most MNIST pixels -- can take
almost all the mass) for discrete data, ``categorical`` (L logits per dimension), ``gaussian`` (mean
and standard deviation output per example, or one shared learned standard deviation per dimension)
for continuous data; ``auto`` chooses by the data.

Sampling options (:class:`VAESampleConfig`): ``temperature`` scales the prior's standard deviation
for z, and ``mean=True`` returns the decoder means E[x|z] instead of draws from p(x|z):
``model.sample(8, mean=True, temperature=0.7)``.

>>> import torch
>>> from deepgen.data import DataInfo
>>> model = VAE(DataInfo("digits", (1, 8, 8), 17), VAEConfig(latent_dim=8))
>>> model.loss(torch.rand(4, 1, 8, 8).round())["loss"].shape
torch.Size([])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.config import check_positive
from deepgen.distributions import kl_normal_standard, standard_normal_log_prob
from deepgen.errors import ConfigError
from deepgen.models.density import LatentVariableModel, mean_with_stderr
from deepgen.models.vae.warmup import KLWarmup
from deepgen.nn import MLP, ConvDecoder, ConvEncoder, arch_for, likelihood_head
from deepgen.registry import register

#: Memory budget (bytes, estimated) for one block of decoder evaluations in importance sampling.
IS_BLOCK_BYTES = 160 * 2**20


@dataclass(frozen=True)
class VAEConfig:
    """Options of :class:`VAE`.

    Attributes:
        latent_dim: size of z.
        arch: ``mlp``, ``conv`` (images only) or ``auto`` (conv for images).
        hidden: MLP hidden sizes (encoder; reversed for the decoder).
        channels: conv channels after each downsampling (encoder; reversed for the decoder).
        act: activation of the encoder's and decoder's hidden layers (MLP or conv). Burda et al.
            (2016) use tanh in the MLP architecture whose numbers the IWAE issue quotes.
        decoder: likelihood p(x|z): auto, bernoulli, categorical, logistic, gaussian.
        decoder_std: Gaussian decoder's standard deviation: ``shared`` (one learned value per
            dimension; with a linear decoder this is probabilistic PCA, whose log p(x) is known in
            closed form) or ``per-example`` (output by the decoder with z, floored at exp(-6)). The
            default is ``shared``: on 8gaussians the per-example variant collapses its posterior
            (KL -> 0, a single broad Gaussian, test NLL 4.25 nats vs 3.23 after 5,000 steps).
        beta: weight of the KL term (1 = the ELBO; beta-VAE otherwise; the reported bound always
            uses beta = 1).
        kl_warmup: training steps over which the KL weight ramps linearly from 0 (step 0) to
            ``beta`` (reached at step ``kl_warmup``); 0 = no warm-up. Bowman et al. (2016) and
            Sonderby et al. (2016) use this against posterior collapse. The model counts its steps
            in the buffer ``kl_step``, so a resumed run continues the ramp.
        free_bits: lambda, in nats per latent dimension: the KL term becomes
            sum_j max(lambda, KL_j), KL_j averaged over the batch (Kingma et al., 2016,
            arXiv:1606.04934); 0 = off.
    """

    latent_dim: int = 16
    arch: Literal["auto", "mlp", "conv"] = "auto"
    hidden: tuple[int, ...] = (256, 256)
    channels: tuple[int, ...] = (32, 64)
    act: Literal["relu", "leaky_relu", "elu", "silu", "gelu", "tanh", "softplus"] = "relu"
    decoder: Literal["auto", "bernoulli", "categorical", "logistic", "gaussian"] = "auto"
    decoder_std: Literal["shared", "per-example"] = "shared"
    beta: float = 1.0
    kl_warmup: int = 0
    free_bits: float = 0.0

    def __post_init__(self):
        check_positive(self, "latent_dim", "beta")
        if self.kl_warmup < 0:
            raise ConfigError(f"{type(self).__name__}.kl_warmup must be >= 0 steps, got {self.kl_warmup}")
        if not (self.free_bits >= 0 and math.isfinite(self.free_bits)):
            raise ConfigError(f"{type(self).__name__}.free_bits must be a finite number >= 0, got {self.free_bits}")


@dataclass(frozen=True)
class VAESampleConfig:
    """Sampling options of :class:`VAE`.

    Attributes:
        mean: return the decoder means E[x|z] (in [0, 1], not on the lattice, for discrete data)
            instead of draws x ~ p(x|z).
        temperature: scale of the prior's standard deviation for z (1 samples the model; below 1
            trades diversity for typicality).
    """

    mean: bool = False
    temperature: float = 1.0

    def __post_init__(self):
        check_positive(self, "temperature")


@register("vae")
class VAE(KLWarmup, LatentVariableModel):
    """Variational autoencoder: ELBO training, ELBO bound and importance-sampled log p(x).

    Networks: ``encoder`` (x -> 2 * latent_dim: mean and log-variance of q(z|x)) and ``decoder``
    (z -> P parameters per data dimension), with the likelihood head ``likelihood`` turning the
    decoder's output into p(x|z) (its ``log_std`` is the shared Gaussian standard deviation).

    With ``kl_warmup`` the model counts its training steps in the buffer ``kl_step`` (like batch
    norm's ``num_batches_tracked``): each ``loss`` evaluated in training mode with gradients
    advances it by 1 / grad_accum (the trainer's ``grad_accum``, read in
    :meth:`configure_optimizers`), so it equals the trainer's global step and is saved and
    restored with the checkpoint. (Overriding ``train_step`` to read ``ctx.global_step`` instead
    would make the trainer refuse ``--grad-accum`` and ``--compile`` and skip the DDP wrapper for
    every VAE.)
    """

    family = "vae"
    Config = VAEConfig
    SampleConfig = VAESampleConfig
    test_options = {"latent_dim": 4, "hidden": (32, 32), "channels": (8, 16)}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        self.arch = arch_for(info, cfg.arch, model=self.name)
        head = likelihood_head(info, cfg.decoder, model=self.name, std=cfg.decoder_std, min_log_std=-6.0)
        p = head.params_per_dim
        if self.arch == "conv":
            c = info.shape[0]
            self.encoder = ConvEncoder(info.shape, 2 * cfg.latent_dim, cfg.channels, act=cfg.act)
            self.decoder = ConvDecoder(
                cfg.latent_dim, (c * p, *info.shape[1:]), tuple(reversed(cfg.channels)), act=cfg.act
            )
        else:
            self.encoder = MLP(info.dim, 2 * cfg.latent_dim, cfg.hidden, act=cfg.act)
            self.decoder = MLP(cfg.latent_dim, info.dim * p, tuple(reversed(cfg.hidden)), act=cfg.act)
        self.likelihood = head
        self._is_block: int | None = None
        self._setup_kl_warmup(cfg.kl_warmup)
        # checkpoints written before the shared heads stored the Gaussian's log-std as "log_std"
        self.register_load_state_dict_pre_hook(_rename_old_log_std)

    @property
    def decoder_kind(self) -> str:
        """The likelihood p(x|z): bernoulli, categorical, logistic or gaussian."""
        return self.likelihood.kind

    @property
    def log_std(self) -> torch.Tensor:
        """The shared Gaussian decoder's log standard deviation, shape ``info.shape``."""
        return self.likelihood.log_std

    # -- networks ----------------------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): mean and log-variance, each (B, latent_dim)."""
        h = self.encoder(x)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decoder_log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z), (B,), for x (B, *shape) and z (B, latent)."""
        return self.likelihood.log_prob(self.decoder(z), x)

    # -- objectives --------------------------------------------------------------------------------
    def loss(self, x, y=None):
        """Negative (beta-weighted, warmed-up, free-bits) ELBO per dimension; logs the true ELBO."""
        mu, logvar = self.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        rec = self.decoder_log_prob(x, z)
        kl_dims = kl_normal_per_dim(mu, logvar)
        kl = kl_dims.sum(1)
        weight = self.kl_weight()
        self.count_kl_step()
        loss = -(rec.mean() - weight * self.kl_penalty(kl_dims)) / self.info.dim
        return {
            "loss": loss,
            "elbo": (rec - kl).mean().detach(),
            "kl": kl.mean().detach(),
            "kl_weight": weight.detach() if torch.is_tensor(weight) else weight,
        }

    def kl_weight(self, step: int | None = None) -> float | torch.Tensor:
        """Weight of the KL term at training step ``step`` (default: the model's own step count).

        ``beta * min(1, step / kl_warmup)``, or ``beta`` without warm-up. From the step count it is a
        0-d tensor on the model's device (no host synchronisation per step).
        """
        return self.config.beta * self.warmup_factor(step)

    def kl_penalty(self, kl_dims: torch.Tensor) -> torch.Tensor:
        """The batch's KL term, scalar, from per-dimension KLs (B, latent): their batch mean summed
        over dimensions, each dimension's floored at ``free_bits`` when that is set."""
        per_dim = kl_dims.mean(0)
        if self.config.free_bits:
            per_dim = torch.clamp(per_dim, min=self.config.free_bits)
        return per_dim.sum()

    def log_importance_weights(self, x, k):
        mu, logvar = self.posterior(x)
        return self._log_weights(x, mu, logvar, k, self._decodes_per_block())

    def _log_weights(self, x, mu, logvar, k: int, block: int) -> torch.Tensor:
        """(B, k) log-weights for k fresh z ~ q(z|x), decoding at most about ``block`` z at a time."""
        std = torch.exp(0.5 * logvar)
        b = len(x)
        eps = torch.randn(b, k, mu.shape[1], device=x.device, dtype=mu.dtype)
        z = mu.unsqueeze(1) + std.unsqueeze(1) * eps  # (B, k, latent)
        log_px_z = self._decode_log_px_z(x, z, block)
        log_pz = standard_normal_log_prob(z.reshape(b * k, -1)).view(b, k)
        log_qz = (-0.5 * eps.pow(2) - torch.log(std).unsqueeze(1) - 0.5 * math.log(2 * math.pi)).sum(-1)
        return log_px_z + log_pz - log_qz

    def _decode_log_px_z(self, x, z, block: int) -> torch.Tensor:
        """(B, k) log p(x | z) for z (B, k, latent), decoding about ``block`` z per decoder call."""
        k = z.shape[1]
        rows = max(1, block // k)  # examples per decoder call
        return torch.cat(
            [
                self.decoder_log_prob(
                    xb.unsqueeze(1).expand(len(xb), k, *x.shape[1:]).reshape(len(xb) * k, *x.shape[1:]),
                    zb.reshape(len(xb) * k, -1),
                ).view(len(xb), k)
                for xb, zb in zip(x.split(rows), z.split(rows))
            ]
        )

    def elbo(self, x):
        """One-draw ELBO with the analytic KL, log p(x|z) - KL(q(z|x) || p(z)), (B,) nats.

        Not always of lower variance than the one-draw log-weight: on a digits VAE after 600
        steps the draws' standard deviations were 2.9 (this) and 2.4 nats (log-weight).
        """
        mu, logvar = self.posterior(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.decoder_log_prob(x, z) - kl_normal_standard(mu, logvar)

    def elbo_estimate(self, x, k=100, chunk=None, *, y=None):
        """Per-example ELBO, the mean of ``k`` log-weights: ``(mean (B,), stderr (B,))`` nats.

        The estimator of :meth:`LatentVariableModel.elbo_estimate`, with memory bounded as in
        :meth:`log_prob_estimate` (x encoded once, draws in chunks, decoder calls in blocks of about
        :data:`IS_BLOCK_BYTES`).
        """
        mu, logvar = self.posterior(x)
        block = self._decodes_per_block()
        chunk = chunk or max(1, block // max(1, len(x)))
        parts = [self._log_weights(x, mu, logvar, min(chunk, k - i), block) for i in range(0, k, chunk)]
        return mean_with_stderr(torch.cat(parts, 1))

    def log_prob_estimate(self, x, k=100, chunk=None, *, y=None):
        """Importance-sampled log p(x) (Burda et al., 2016): ``(estimate (B,), stderr (B,))`` nats.

        Memory stays bounded for any batch and ``k``: x is encoded once, the K proposals are drawn
        ``chunk`` at a time (default: as many as one block of decoder evaluations holds for the
        whole batch, at least 1), and each chunk is decoded in blocks of about
        :data:`IS_BLOCK_BYTES` of estimated activations.
        """
        from deepgen.metrics.likelihood import logmeanexp_with_stderr

        mu, logvar = self.posterior(x)
        block = self._decodes_per_block()
        chunk = chunk or max(1, block // max(1, len(x)))
        parts = [self._log_weights(x, mu, logvar, min(chunk, k - i), block) for i in range(0, k, chunk)]
        return logmeanexp_with_stderr(torch.cat(parts, 1))

    def _decodes_per_block(self) -> int:
        """How many z to decode at once: :data:`IS_BLOCK_BYTES` over the estimated bytes per z.

        Measured once by a one-example dry run of the decoder: the largest of any layer's input plus
        output (plus the k x k unfolded input a CPU convolution builds, which dominates conv
        decoders), and about 24 tensors of the data's size alive in the likelihood's log-prob (the
        discretised logistic's CDF terms).
        """
        if self._is_block is None:
            sizes: list[int] = [0]

            def record(module, inputs, out):
                if torch.is_tensor(out) and inputs and torch.is_tensor(inputs[0]):
                    n_in = inputs[0].numel()
                    unfolded = n_in * math.prod(module.kernel_size) if isinstance(module, torch.nn.Conv2d) else 0
                    sizes.append(n_in + out.numel() + unfolded)

            hooks = [m.register_forward_hook(record) for m in self.decoder.modules()]
            p = next(self.decoder.parameters())
            try:
                with torch.no_grad():
                    self.decoder(torch.zeros(1, self.config.latent_dim, device=p.device, dtype=p.dtype))
            finally:
                for h in hooks:
                    h.remove()
            per_z = (max(sizes) + 24 * self.info.dim) * p.element_size()
            self._is_block = max(1, IS_BLOCK_BYTES // per_z)
        return self._is_block

    # -- sampling ----------------------------------------------------------------------------------
    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x | z], (B, *shape), in data space (differentiable in z)."""
        return self.likelihood.mean(self.decoder(z))

    # -- latent space ------------------------------------------------------------------------------
    latent_description = "posterior mean of z"

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The posterior mean E[z | x] under q(z|x), (B, latent_dim): deterministic, in the prior's
        N(0, I) coordinates, so interpolations and traversals in units of the prior's std mean
        something."""
        return self.posterior(x)[0]

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's mean E[x | z] (B, *shape): probabilities for a Bernoulli decoder, the
        expected level for categorical and logistic ones, the Gaussian's mean. Differentiable in z."""
        return self.decode_mean(z)

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        """z ~ N(0, temperature^2 I), then x ~ p(x|z) (or its mean when ``options.mean``)."""
        z = options.temperature * torch.randn(n, self.config.latent_dim, generator=generator, device=self.device)
        params = self.decoder(z)
        return self.likelihood.mean(params) if options.mean else self.likelihood.sample(params, generator)


def kl_normal_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_j, exp(logvar_j)) || N(0, 1)) per latent dimension, (B, latent) nats."""
    return 0.5 * (mu * mu + torch.exp(logvar) - 1 - logvar)


def _rename_old_log_std(module, state_dict, prefix, *args) -> None:
    if prefix + "log_std" in state_dict and prefix + "likelihood.log_std" not in state_dict:
        state_dict[prefix + "likelihood.log_std"] = state_dict.pop(prefix + "log_std")
