"""What DDPM and score-SDE models share: data scaling, the denoising network, labels and
classifier-free guidance, SDEdit's strength, and the probability-flow ODE likelihood.

* **Data.** Discrete data on L levels (stored as ``k / (L - 1)``) are mapped to the lattice
  ``-1 + 2k / (L - 1)`` in [-1, 1] that DDPM's discretised decoder expects (Ho et al. 2020,
  arXiv:2006.11239, sec. 3.3); continuous data (standardised by deepgen) are used as they are.
  Samples go back with :meth:`DiffusionModel.from_model`, snapped onto the lattice.
* **Network.** ``net(x_t, time, y)`` predicts a tensor of x's shape (two with a learned variance):
  :class:`deepgen.nn.UNet` for images, :class:`~deepgen.models.diffusion.networks.TimeMLP`
  otherwise (``arch``). Its ``time`` input is on the UNet's scale (hundreds of units from clean
  to pure noise); each model says how it maps its own time onto it (``net_time``).
* **Labels and guidance.** With ``class_conditional`` the network also takes the label; training
  replaces it by the null label ``C`` with probability ``p_uncond``, so one network learns
  ``eps(x, c)`` and ``eps(x)``. Classifier-free guidance (Ho & Salimans 2022, arXiv:2207.12598,
  eq. 6) samples with ``(1 + w) eps(x, c) - w eps(x)``: ``w = 0`` is the conditional model
  unguided, ``w > 0`` sharpens it (diffusers' ``guidance_scale`` is ``1 + w``), ``w = -1`` is the
  unconditional model. Combining the predictions of x0, v or the score in the same way is the
  same thing, since each is affine in eps with coefficients that do not depend on the label.
* **ODE likelihood.** :meth:`DiffusionModel.ode_log_likelihood` runs the shared
  :func:`deepgen.samplers.probability_flow_log_likelihood` (Song et al. 2021, arXiv:2011.13456,
  sec. 4.3 and appendix D.2): the density of the probability-flow ODE's model at the smallest time
  ``eps``. Exact divergence (D autograd passes per step) for examples of at most 16 entries, so the
  number is exact to the ODE solver's tolerance; Hutchinson's unbiased estimate with ``k`` Rademacher
  probes above (Grathwohl et al. 2019, arXiv:1810.01367), an *estimate*. About 1.1 s per sklearn
  digit (8x8, default UNet, tolerance 1e-5, one CPU thread). On discrete data the ODE
  density is integrated over each lattice cell (width ``w = 2 / (L - 1)``) by uniform dequantisation,

      log P(x) = log int_cell p(x + u) du >= E_u[log p(x + u)] + D log w       (Jensen)

  (Theis et al. 2016, arXiv:1511.01844; Song et al. appendix D.2): one draw of u, a *lower bound*
  in expectation (exact divergence) or an estimate of one (Hutchinson).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from deepgen.errors import ConfigError, DataError
from deepgen.models.base import DensityKind, GenerativeModel, LogLikelihood
from deepgen.models.diffusion.networks import TimeMLP
from deepgen.nn import UNet, UNetConfig, arch_for

#: Examples with at most this many entries get the exact divergence in ODE likelihoods.
EXACT_MAX_DIM = 16


@dataclass(frozen=True)
class DenoiserOptions:
    """Options of the denoising network, labels and ODE likelihoods (shared by ddpm and score-sde).

    arch: unet (images only), mlp, or auto (unet for images (C, H, W), mlp otherwise).
    channels: UNet channels per resolution level, highest resolution first (each later level halves it).
    layers_per_block: UNet residual blocks per level on the way down (one more on the way up).
    attention_levels: UNet levels (indices into channels) with self-attention after each residual block.
    dropout: dropout in the UNet's residual blocks and the MLP's hidden layers (DDPM: 0.1 on CIFAR-10).
    hidden: MLP hidden sizes (vectors).
    class_conditional: condition on the class label (labelled data only), for classifier-free guidance.
    p_uncond: probability that training replaces a label by the null label (Ho & Salimans: 0.1 or 0.2).
    ode_tol: relative and absolute tolerance of the adaptive (rk45) probability-flow ODE likelihood.
    """

    arch: Literal["auto", "mlp", "unet"] = "auto"
    channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 2
    attention_levels: tuple[int, ...] = ()
    dropout: float = 0.0
    hidden: tuple[int, ...] = (256, 256, 256)
    class_conditional: bool = False
    p_uncond: float = 0.1
    ode_tol: float = 1e-5

    def __post_init__(self):
        name = type(self).__name__
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"{name}.dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.p_uncond < 1:
            raise ConfigError(f"{name}.p_uncond must be in [0, 1), got {self.p_uncond}")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"{name}.hidden must be one or more positive sizes, got {self.hidden}")
        if not (math.isfinite(self.ode_tol) and self.ode_tol > 0):
            raise ConfigError(f"{name}.ode_tol must be a finite number > 0, got {self.ode_tol}")


def with_shared_docs(cls):
    """Append :class:`DenoiserOptions`' field descriptions to a subclass's docstring (for ``deepgen list -v``)."""
    shared = DenoiserOptions.__doc__.split("\n", 1)[1]
    cls.__doc__ = cls.__doc__.rstrip() + "\n" + shared
    return cls


def check_guidance(w: float) -> float:
    if not (math.isfinite(w) and w >= -1):
        raise ConfigError(f"guidance w must be a finite number >= -1 (0: none, -1: unconditional), got {w}")
    return w


def check_strength(strength) -> float:
    """An edit strength: a number in [0, 1]."""
    try:
        s = float(strength)
    except (TypeError, ValueError):
        raise ConfigError(f"edit strength must be a number in [0, 1], got {strength!r}") from None
    if not 0 <= s <= 1:
        raise ConfigError(f"edit strength must lie in [0, 1], got {strength!r}")
    return s


class DiffusionModel(GenerativeModel):
    """Base of :class:`~deepgen.models.diffusion.DDPM` and :class:`~deepgen.models.diffusion.ScoreSDE`.

    Subclasses set ``self.net`` via :meth:`build_network`, implement ``net_time`` (their time ->
    the network's) and the sampler. Shapes: data (B, *info.shape); network outputs the same.
    """

    family = "diffusion"
    condition_option = "class_conditional"
    loss_units = "mean squared error per dimension"
    #: Likelihoods cost hundreds of network evaluations per example (digits, default UNet, one
    #: thread: 0.65 s for DDPM's bound over T = 1000 steps, 1.1 s for an ODE likelihood) and
    #: sampling up to T per sample: ``deepgen eval`` scores at most this many test examples and
    #: draws this many samples.
    eval_examples = 500
    eval_samples = 1000
    #: 2-D density maps solve one ODE (or sum T bound terms) per grid point: 60 x 60 points.
    density_grid_max = 60

    def __init__(self, info, config=None):
        super().__init__(info, config)
        if self.config.class_conditional:
            if not info.num_classes:
                raise DataError(f"{self.name} with class_conditional needs labelled data; {info.name} has none")
            self.conditional = True
        self.arch = arch_for(info, self.config.arch, model=self.name, conv="unet")
        self.outputs = 1

    # -- network ----------------------------------------------------------------------------------
    def build_network(self, outputs: int = 1) -> torch.nn.Module:
        """The UNet (images) or TimeMLP (vectors), predicting ``outputs`` tensors of the data's shape."""
        cfg, info = self.config, self.info
        self.outputs = outputs
        classes = info.num_classes if self.conditional else None
        if self.arch == "unet":
            c = info.shape[0]
            ucfg = UNetConfig(
                in_channels=c,
                out_channels=c * outputs,
                channels=cfg.channels,
                layers_per_block=cfg.layers_per_block,
                attention_levels=cfg.attention_levels,
                dropout=cfg.dropout,
                num_classes=classes,
            )
            return UNet(ucfg)
        return TimeMLP(info.dim, info.dim * outputs, cfg.hidden, dropout=cfg.dropout, num_classes=classes)

    def network(self, x: torch.Tensor, time: torch.Tensor, y: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """The network's ``outputs`` predictions, each of x's shape, for x (B, ...) at network times (B,)."""
        p = next(self.net.parameters())
        xin = x.to(p.dtype)
        time = time.to(p.dtype).expand(x.shape[0]) if time.dim() == 0 else time.to(p.dtype)
        raw = self.net(xin, time, y) if self.arch == "unet" else self.net(xin.flatten(1), time, y)
        return tuple(r.reshape(x.shape).to(x.dtype) for r in raw.chunk(self.outputs, dim=1))

    def guided(self, x: torch.Tensor, time: torch.Tensor, y: torch.Tensor | None, w: float = 0.0):
        """Network outputs with classifier-free guidance ``w`` on the first (the prediction).

        ``(1 + w) f(x, y) - w f(x, null)``; other outputs (a learned variance) are the conditional ones.
        ``w = 0`` or no labels: one plain network call.
        """
        if y is None or w == 0:
            return self.network(x, time, y)
        null = torch.full_like(y, self.info.num_classes)
        both = self.network(torch.cat([x, x]), torch.cat([time, time]), torch.cat([y, null]))
        cond = [o[: len(x)] for o in both]
        uncond = both[0][len(x) :]
        return ((1 + w) * cond[0] - w * uncond, *cond[1:])

    def check_sampling_guidance(self, w: float) -> None:
        if w != 0 and not self.conditional:
            raise ConfigError(f"{self.name}: guidance needs a class-conditional model (-o class_conditional=true)")
        if w != 0 and self.config.p_uncond == 0:
            raise ConfigError(
                f"{self.name}: guidance needs the unconditional model, but it was trained with p_uncond=0"
            )

    def training_labels(self, y: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """Checked labels with each replaced by the null label with probability ``p_uncond``."""
        y = self.check_labels(y, n, draw=False)
        if y is None or self.config.p_uncond == 0:
            return y
        drop = torch.rand(n, device=y.device) < self.config.p_uncond
        return torch.where(drop, torch.full_like(y, self.info.num_classes), y)

    # -- data space -------------------------------------------------------------------------------
    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """Data -> the diffusion's space: ``2x - 1`` on discrete data (the lattice in [-1, 1]), else x."""
        return 2 * x - 1 if self.info.is_discrete else x

    def from_model(self, v: torch.Tensor) -> torch.Tensor:
        """The diffusion's space -> data, on the data's support (snapped to the lattice)."""
        return self.to_data_space((v + 1) / 2) if self.info.is_discrete else v

    def check_clip(self, clip: bool | None) -> tuple[float, float] | None:
        """The range x0 predictions are clipped to: [-1, 1] on discrete data unless ``clip`` is False."""
        if clip is None:
            clip = self.info.is_discrete
        if clip and not self.info.is_discrete:
            raise ConfigError(f"{self.name}: clip needs discrete data (range [0, 1]); {self.info.name} is continuous")
        return (-1.0, 1.0) if clip else None

    # -- ODE likelihood ---------------------------------------------------------------------------
    @property
    def ode_kind(self) -> DensityKind:
        """What the probability-flow ODE likelihood is on this data (see the module docstring)."""
        if self.info.dim > EXACT_MAX_DIM:
            return DensityKind.ESTIMATE
        return DensityKind.BOUND if self.info.is_discrete else DensityKind.EXACT

    def ode_log_likelihood(self, x, score_fn, sde, eps: float, k: int | None) -> LogLikelihood:
        """Probability-flow ODE log-likelihood of data ``x`` (B, *shape) in nats, labelled.

        ``score_fn(v, t)`` is the model's score in the diffusion's space (float64 v), ``sde`` its
        forward SDE, ``eps`` the time the density is taken at, ``k`` the Hutchinson probes.
        """
        from deepgen.samplers import probability_flow_log_likelihood

        v = self.to_model(x).double()
        log_w = torch.zeros(len(x), dtype=torch.float64, device=x.device)
        extra = ""
        if self.info.is_discrete:
            width = 2.0 / (self.info.levels - 1)
            v = v + (torch.rand(v.shape, dtype=v.dtype, device=v.device) - 0.5) * width
            log_w += self.info.dim * math.log(width)
            extra = "; uniform dequantisation, 1 draw"
        exact = self.info.dim <= EXACT_MAX_DIM
        probes = k or 1
        tol = self.config.ode_tol
        with torch.no_grad():
            log_p, _ = probability_flow_log_likelihood(
                score_fn,
                sde,
                v,
                eps=eps,
                divergence="exact" if exact else "hutchinson",
                n_probes=probes,
                rtol=tol,
                atol=tol,
            )
        div = "exact divergence" if exact else f"Hutchinson divergence, {probes} probe{'s' * (probes > 1)}"
        method = f"probability-flow ODE (rk45, tol {tol:g}, t={eps:.3g}), {div}{extra}"
        return LogLikelihood((log_p + log_w).to(x.dtype), self.ode_kind, method)

    def held_out_numbers(self, x: torch.Tensor, y: torch.Tensor | None, nll_fn) -> dict[str, float]:
        """The trainer's validation dict for a batch: the training loss ``mse``, then ``nll_fn()``, the
        mean NLL estimate (nats, model scale), as ``nll`` (+ ``bpd`` on discrete data; continuous data
        get the standardisation's log-scale added back, as every model's validation number does)."""
        out = {"mse": self.loss(x, y)["mse"].item()}
        nll = nll_fn()
        if self.info.is_discrete:
            from deepgen.metrics.likelihood import bits_per_dim

            return {**out, "nll": nll, "bpd": bits_per_dim(nll, self.info.dim)}
        return {**out, "nll": nll + self.info.log_scale}

    def prepare_edit(self, x: torch.Tensor, strength, y, options):
        """Shared checks of :meth:`edit`: ``(strength, labels, parsed options)``."""
        opts = self.sample_options(**options)
        self.check_input(x)
        return check_strength(strength), self.check_labels(y, len(x), draw=False), opts
