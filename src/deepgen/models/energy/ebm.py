"""A deep energy-based model trained by contrastive divergence with SGLD negatives from a replay buffer
(Du & Mordatch 2019, "Implicit generation and generalization in energy-based models", arXiv:1903.08689).

The model is ``p(x) = exp(-E(x)) / Z`` with E a neural network (an MLP for vectors, a convolutional
network for images) and Z unknown. The maximum-likelihood gradient is

    d/dtheta (-log p(x)) = dE(x)/dtheta - E_{x- ~ p}[dE(x-)/dtheta]

(Hinton 2002), with the model expectation taken over negatives x- drawn by stochastic-gradient
Langevin dynamics (Welling & Teh 2011), written in Du & Mordatch's form (their eq. 3)

    x^k = x^{k-1} - (lambda / 2) grad_x E(x^{k-1}) + w^k,     w^k ~ N(0, sigma^2 I),

here ``x <- x + eps * clip(-grad_x E) + sigma * z`` with ``eps = sgld_step``, ``sigma =
sgld_noise``, each gradient entry clipped to ``sgld_grad_clip``. The chains start from a replay
buffer of past negatives (95% of them; 5% from fresh uniform noise, the paper's sec. 3.1), and the
updated negatives go back into it. The loss is the contrastive divergence plus the paper's
regulariser of the energies' magnitudes (sec. 3.3): ``E(x+) - E(x-) + alpha (E(x+)^2 + E(x-)^2)``;
spectral normalisation of every layer (their sec. 3.3, Miyato et al. 2018) is an option.
``sigma`` much smaller than ``sqrt(2 eps)`` is the paper's short-run heuristic: the chain samples a
sharpened, not the true, ``p``.

Density: ``-E(x)``, labelled unnormalised (Z is unknown). ``method="ais"`` estimates log Z by
annealed importance sampling (Neal 2001) with MALA transitions from a wide Gaussian (the samplers'
:func:`~deepgen.samplers.mala_kernel`), once per evaluation (:meth:`EBM.prepare_likelihood`), for
data of at most ``ais_max_dim`` dimensions (2-D toys): an estimate of log p(x) with a standard
error shared by every example. Discrete data (images) are mapped to [-1, 1] as for the diffusion
models; their -E is a density there, so it is not a probability mass either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.errors import ConfigError, DataError
from deepgen.metrics.likelihood import ais_log_partition
from deepgen.models.base import DensityKind, GenerativeModel, LogLikelihood, build_optimizer
from deepgen.models.energy.rbm import version_key
from deepgen.nn import MLP, ConvEncoder, arch_for
from deepgen.registry import register
from deepgen.samplers import langevin, mala_kernel


@dataclass(frozen=True)
class EBMConfig:
    """Options of :class:`EBM`.

    arch: mlp, conv, or auto (conv for images, mlp otherwise).
    hidden: MLP hidden sizes; channels: convolution channels (stride 2 each).
    act: activation (smooth ones give Langevin smooth gradients: silu by default).
    spectral_norm: spectral normalisation on every layer.
    alpha: weight of the energy-magnitude regulariser alpha (E(x+)^2 + E(x-)^2); default 1 on images
        (Du & Mordatch), 0.1 on vectors (with 1, a 2-D toy's energy contrast stayed below 0.3 nats).
    buffer_size: replay buffer of past negatives; reinit: fraction of chains started from noise.
    sgld_steps, sgld_step, sgld_noise, sgld_grad_clip: training's Langevin chains (K, eps, sigma,
        elementwise clip of -grad E; 0 for none). Defaults (None): on images Du & Mordatch's short
        run (eps 10, sigma 0.005, clip 0.01); on vectors true Langevin (eps 0.01, sigma =
        sqrt(2 eps), no clip).
    noise_range: half-width of the uniform noise new chains start from, in the model's space
        (default 1 on images, which live in [-1, 1]; 3 on standardised vectors).
    ais_max_dim, ais_chains, ais_steps, ais_step: AIS of log Z (method ais): data dimensions it is
        offered for, chains, intermediate distributions, MALA step size.
    """

    arch: Literal["auto", "mlp", "conv"] = "auto"
    hidden: tuple[int, ...] = (128, 128, 128)
    channels: tuple[int, ...] = (32, 64, 128)
    act: str = "silu"
    spectral_norm: bool = False
    alpha: float | None = None
    buffer_size: int = 10_000
    reinit: float = 0.05
    sgld_steps: int = 60
    sgld_step: float | None = None
    sgld_noise: float | None = None
    sgld_grad_clip: float | None = None
    noise_range: float | None = None
    ais_max_dim: int = 16
    ais_chains: int = 200
    ais_steps: int = 500
    ais_step: float = 0.05

    def __post_init__(self):
        for name in ("buffer_size", "sgld_steps", "ais_chains", "ais_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"EBMConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("sgld_step", "noise_range", "ais_step"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ConfigError(f"EBMConfig.{name} must be a finite number > 0, got {v}")
        if not 0 <= self.reinit <= 1:
            raise ConfigError(f"EBMConfig.reinit must be in [0, 1], got {self.reinit}")
        for name in ("alpha", "sgld_noise", "sgld_grad_clip"):
            v = getattr(self, name)
            if v is not None and not v >= 0:
                raise ConfigError(f"EBMConfig.{name} must be >= 0, got {v}")

    def regulariser(self, images: bool) -> float:
        return self.alpha if self.alpha is not None else (1.0 if images else 0.1)

    def chain_settings(self, images: bool) -> tuple[float, float, float, float]:
        """(eps, sigma, grad clip (0: none), noise range) with the data-dependent defaults filled in."""
        eps = self.sgld_step if self.sgld_step is not None else (10.0 if images else 0.01)
        sigma = self.sgld_noise if self.sgld_noise is not None else (0.005 if images else math.sqrt(2 * eps))
        clip = self.sgld_grad_clip if self.sgld_grad_clip is not None else (0.01 if images else 0.0)
        r = self.noise_range if self.noise_range is not None else (1.0 if images else 3.0)
        return eps, sigma, clip, r


@dataclass(frozen=True)
class EBMSampleConfig:
    """Sampling options of :class:`EBM`.

    steps: Langevin steps from the start; step, noise: eps and sigma (default: the training chains').
    start: noise (uniform, as new training chains) or buffer (the replay buffer's chains).
    """

    steps: int = 200
    step: float | None = None
    noise: float | None = None
    start: Literal["noise", "buffer"] = "noise"

    def __post_init__(self):
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.step is not None and not self.step > 0:
            raise ConfigError(f"step must be > 0, got {self.step}")
        if self.noise is not None and not self.noise >= 0:
            raise ConfigError(f"noise must be >= 0, got {self.noise}")


@register("ebm")
class EBM(GenerativeModel):
    """Deep EBM (Du & Mordatch 2019): energy network, SGLD negatives from a replay buffer, CD loss.

    Density: unnormalised (-E(x)); ``method="ais"`` an AIS estimate of log p on low-dimensional
    data. Attributes: ``energy_net`` ((B, *shape) -> (B, 1)), ``buffer`` (the replay buffer,
    per-rank state under DDP).
    """

    family = "energy"
    Config = EBMConfig
    SampleConfig = EBMSampleConfig
    density_summary = "unnormalised (-E(x)); method ais: AIS estimate of log p (<= 16 dimensions)"
    likelihood_methods = ("ais",)
    train_defaults = {"lr": 1e-3, "betas": (0.0, 0.999)}  # moons, 1,000 steps: 1e-4 left the density a blur
    per_rank_buffers = ("buffer",)
    ddp_broadcast_buffers = False
    loss_units = "energy (contrastive divergence + regulariser)"
    test_options = {
        "hidden": (16, 16),
        "channels": (8, 16),
        "buffer_size": 64,
        "sgld_steps": 3,
        "ais_chains": 16,
        "ais_steps": 20,
    }
    test_sample_options = {"steps": 3}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        cfg = self.config
        self.arch = arch_for(info, cfg.arch, model="ebm", conv="conv")
        self.chain = cfg.chain_settings(info.is_discrete)  # (eps, sigma, clip, noise range)
        if self.arch == "conv":
            self.energy_net = ConvEncoder(info.shape, 1, cfg.channels, act=cfg.act, spectral_norm=cfg.spectral_norm)
        else:
            self.energy_net = MLP(info.dim, 1, cfg.hidden, act=cfg.act, spectral_norm=cfg.spectral_norm)
        self.register_buffer("buffer", self._noise((cfg.buffer_size, *info.shape), None, torch.device("cpu")))
        self._log_z: tuple | None = None  # (key, log Z, stderr, text)

    # -- spaces and energies ------------------------------------------------------------------------
    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> the model's space: discrete data on [-1, 1] (as the diffusion models), else as is."""
        return 2 * x - 1 if self.info.is_discrete else x

    def from_model(self, v: torch.Tensor) -> torch.Tensor:
        return self.to_data_space((v.clamp(-1, 1) + 1) / 2) if self.info.is_discrete else v

    def _noise(self, shape, generator, device) -> torch.Tensor:
        r = self.chain[3]
        return (2 * torch.rand(shape, generator=generator, device=device) - 1) * r

    def energy(self, v: torch.Tensor) -> torch.Tensor:
        """E(v) (B,) in the model's space."""
        return self.energy_net(v).squeeze(-1)

    def neg_energy_grad(self, v: torch.Tensor) -> torch.Tensor:
        """-grad_v E(v), detached (works under torch.no_grad, as samplers run)."""
        with torch.enable_grad():
            v = v.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(-self.energy(v).sum(), v)
        return g.detach()

    def run_chains(self, v, steps, step=None, noise=None, generator=None) -> torch.Tensor:
        """Langevin chains in the model's space (the samplers' :func:`~deepgen.samplers.langevin`)."""
        eps0, sigma0, clip, _ = self.chain
        eps = eps0 if step is None else step
        sigma = sigma0 if noise is None else noise
        clamp = (-1.0, 1.0) if self.info.is_discrete else None
        return langevin(
            v,
            self.neg_energy_grad,
            eps,
            steps,
            noise_scale=sigma / math.sqrt(2 * eps),
            clip_grad=clip or None,
            clamp=clamp,
            generator=generator,
        )

    # -- training -----------------------------------------------------------------------------------
    def configure_optimizers(self, cfg):
        return {"main": build_optimizer(self.energy_net.parameters(), cfg)}

    def train_step(self, x, y, ctx):
        cfg = self.config
        pos = self.to_model(x)
        n = len(pos)
        with torch.no_grad():
            idx = torch.randint(0, len(self.buffer), (n,), device=pos.device)
            start = self.buffer[idx].clone()
            fresh = torch.rand(n, device=pos.device) < cfg.reinit
            start[fresh] = self._noise((int(fresh.sum()), *self.info.shape), None, pos.device)
        was_training = self.training
        self.energy_net.eval()  # chains do not update batch statistics (no norm layers by default anyway)
        neg = self.run_chains(start, cfg.sgld_steps)
        self.energy_net.train(was_training)
        with torch.no_grad():
            self.buffer[idx] = neg
        e = self.energy(torch.cat([pos, neg]))
        e_pos, e_neg = e[:n], e[n:]
        cd = e_pos.mean() - e_neg.mean()
        loss = cd + cfg.regulariser(self.info.is_discrete) * (e_pos.pow(2).mean() + e_neg.pow(2).mean())
        ctx.step(loss, "main")
        return {
            "loss": loss.detach(),
            "cd": cd.detach(),
            "e_pos": e_pos.mean().detach(),
            "e_neg": e_neg.mean().detach(),
        }

    # -- density ------------------------------------------------------------------------------------
    @property
    def density_kind(self) -> DensityKind:
        return DensityKind.UNNORMALISED

    def _key(self) -> tuple:
        return version_key(self.parameters())

    def check_ais(self) -> None:
        if self.info.dim > self.config.ais_max_dim:
            raise DataError(
                f"ebm: AIS of log Z is offered for data of at most {self.config.ais_max_dim} dimensions "
                f"(ais_max_dim); {self.info.name} has {self.info.dim}: its chains would not mix in any affordable time"
            )

    @torch.no_grad()
    def ais_log_partition(self, steps=None, chains=None, generator=None) -> tuple[float, float]:
        """(log Z, standard error) by AIS with MALA moves from N(0, s^2 I), s = the chains' noise range."""
        cfg = self.config
        self.check_ais()
        s, d = self.chain[3], self.info.dim
        shape = (-1, *self.info.shape)

        def log_f0(v):
            return -0.5 * (v.flatten(1) ** 2).sum(1) / s**2 - d * (math.log(s) + 0.5 * math.log(2 * math.pi))

        def sample_f0(n, g):
            return s * torch.randn((n, *self.info.shape), generator=g, device=self.device)

        def log_f1(v):
            return -self.energy(v.view(shape))

        kernel = mala_kernel(log_f0, log_f1, cfg.ais_step, 2)
        return ais_log_partition(
            log_f0,
            sample_f0,
            log_f1,
            kernel,
            n_chains=chains or cfg.ais_chains,
            n_steps=steps or cfg.ais_steps,
            generator=generator,
        )

    def prepare_likelihood(self, x=None, *, k=None, generator=None) -> None:
        """AIS of log Z for the current weights, once (only where method ais is offered)."""
        if self.info.dim > self.config.ais_max_dim:
            return
        key = self._key() + (k,)
        if self._log_z is None or self._log_z[0] != key:
            steps = k or self.config.ais_steps
            est, se = self.ais_log_partition(steps, generator=generator)
            text = f"AIS log Z ({self.config.ais_chains} chains, {steps} distributions, MALA; s.e. {se:.3f} shared)"
            self._log_z = (key, est, se, text)

    def log_likelihood(self, x, *, y=None, k=None, method=None) -> LogLikelihood:
        """-E(x) (unnormalised); ``method="ais"``: -E(x) - log Z with log Z estimated by AIS."""
        self.check_method(method)
        self.check_input(x)
        self.check_labels(y, len(x), draw=False)
        with torch.no_grad():
            neg_e = -self.energy(self.to_model(x))
        if method != "ais":
            return LogLikelihood(neg_e, DensityKind.UNNORMALISED, "-E(x) (log Z unknown)")
        self.check_ais()
        if self._log_z is None or self._log_z[0][:-1] != self._key():
            self.prepare_likelihood(x, k=k)
        _, log_z, se, text = self._log_z
        return LogLikelihood((neg_e.double() - log_z).to(x.dtype), DensityKind.ESTIMATE, text, shared_stderr=se)

    def evaluate(self, x, y=None):
        """Held-out mean energy of data and of fresh buffer samples' energy gap (no log Z)."""
        with torch.no_grad():
            e = self.energy(self.to_model(x))
            e_buf = self.energy(self.buffer[: len(x)])
        return {"e_data": e.mean().item(), "e_buffer": e_buf.mean().item()}

    # -- sampling -----------------------------------------------------------------------------------
    @classmethod
    def describe_sampling(cls, options=None) -> str:
        o = options or cls.SampleConfig()
        return f"Langevin, {o.steps} steps from {o.start}"

    def _sample(self, n, options, *, generator, y):
        dev = self.device
        if options.start == "buffer":
            idx = torch.randint(0, len(self.buffer), (n,), generator=generator, device=dev)
            v = self.buffer[idx]
        else:
            v = self._noise((n, *self.info.shape), generator, dev)
        v = self.run_chains(v, options.steps, options.step, options.noise, generator)
        return self.from_model(v).detach()
