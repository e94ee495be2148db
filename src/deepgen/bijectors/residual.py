"""Invertible residual blocks ``z = x + g(x)`` with Lip(g) < 1 (i-ResNet, Residual Flows). Data -> latent.

Behrmann et al., "Invertible Residual Networks" (2019, arXiv:1811.00995) and Chen et al., "Residual
Flows for Invertible Generative Modeling" (2019, arXiv:1906.02735). A residual map ``x + g(x)`` is
invertible when the branch ``g`` is a contraction; this module provides

* spectrally normalised layers, :class:`SpectralNormLinear` and :class:`SpectralNormConv2d`, whose
  operator norm is kept at most ``coeff`` < 1, and the :class:`LipSwish` activation (Lip <= 1), so
  that the branches :func:`lipschitz_mlp` (vectors) and :func:`lipschitz_convnet` (images) are
  contractions;
* :class:`ResidualBlock`, the bijector: inverse by fixed-point iteration, log-determinant exact
  (autograd Jacobian, low dimensions), as a truncated power series, or by the unbiased
  Russian-roulette estimator;
* :func:`converge_spectral_norms` and :func:`set_log_det_mode` to act on every such layer of a model.

>>> _ = torch.manual_seed(0)
>>> block = ResidualBlock(lipschitz_mlp(2, hidden=(16,)), log_det="roulette")
>>> x = torch.randn(8, 2)
>>> z, log_det = block(x)  # unbiased stochastic estimate of log|det dz/dx|, shape (8,)
>>> block.log_det_mode = "exact"  # e.g. for evaluation on 2-D data
>>> _ = block.eval()  # runs the power iterations to convergence
>>> z, log_det = block(x)
>>> x2, inv_log_det = block.inverse(z)  # fixed-point iteration
>>> torch.allclose(x2, x, atol=1e-5), torch.allclose(inv_log_det, -log_det, atol=1e-5)
(True, True)
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.bijectors.base import Bijector, fixed_point_inverse, sum_except_batch
from deepgen.errors import ConfigError

#: Relative safety margin on the estimated largest singular value: power iteration approaches it
#: from below, so the weight is divided by ``(1 + SAFETY) σ̂`` rather than ``σ̂``.
SAFETY = 1e-3

LOG_DET_MODES = ("exact", "series", "roulette")


def _normalise(t: torch.Tensor) -> torch.Tensor:
    return t / torch.linalg.vector_norm(t).clamp_min(torch.finfo(t.dtype).tiny)


class _SpectralNormalised(nn.Module):
    """Shared machinery of the spectrally normalised layers (see :class:`SpectralNormLinear`).

    Subclasses keep buffers ``u`` (output-shaped) and ``v`` (input-shaped, unit norm) and implement
    ``_apply_weight(v)`` (the linear operator without bias) and ``_apply_adjoint(u)`` (its transpose).
    """

    u: torch.Tensor
    v: torch.Tensor

    def __init__(self, coeff: float):
        super().__init__()
        if not 0 < coeff:
            raise ConfigError(f"spectral normalisation coeff must be positive (< 1 for invertibility), got {coeff}")
        self.coeff = float(coeff)
        self._frozen = False  # set by _no_power_updates: evaluate with the stored vectors, update nothing

    def _apply_weight(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _apply_adjoint(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _ready(self) -> bool:
        return self.v.numel() > 0

    @torch.no_grad()
    def _power_step(self) -> None:
        # one step of power iteration on WᵀW: u = W v / |W v|, v = Wᵀ u / |Wᵀ u|
        self.u.copy_(_normalise(self._apply_weight(self.v)))
        self.v.copy_(_normalise(self._apply_adjoint(self.u)))

    def sigma(self) -> torch.Tensor:
        """The current estimate ``σ̂ = |W v|`` of the largest singular value, from the stored ``v``.

        It is a lower bound of the true norm that power iteration drives up to it; it carries a
        gradient to the weight (the ``u vᵀ`` of spectral normalisation).
        """
        # with a graph, a copy: autograd keeps v for the weight's gradient, and the next training
        # forward's power step updates the buffer in place (two forwards, then one backward)
        v = self.v.clone() if torch.is_grad_enabled() else self.v
        return torch.linalg.vector_norm(self._apply_weight(v))

    @torch.no_grad()
    def converge(self, max_iters: int = 1000, tol: float | None = None) -> float:
        """Run power iteration until ``σ̂`` changes by at most ``tol`` (relative); return ``σ̂``.

        ``tol`` defaults to 50 ulps of the weight's dtype (6e-6 in float32, 1e-14 in float64).

        Called automatically when the layer switches from training to eval (``model.eval()``) and
        when the vectors are (re)initialised; call it (or :func:`converge_spectral_norms`) after
        changing the weights by hand. Deterministic: it starts from the stored vectors.
        """
        if not self._ready():
            raise RuntimeError(f"{type(self).__name__}: the input size is not known yet; run a forward pass first")
        if tol is None:
            tol = 50 * torch.finfo(self.weight.dtype).eps
        prev = self.sigma().item()
        for _ in range(max_iters):
            self._power_step()
            cur = self.sigma().item()
            if abs(cur - prev) <= tol * abs(cur):
                return cur
            prev = cur
        return prev

    def _scale(self) -> torch.Tensor:
        """The factor ``min(1, coeff / ((1 + SAFETY) σ̂))`` applied to the weight (1 if no update needed)."""
        if self.training and not self._frozen:
            self._power_step()
        sigma = self.sigma()
        return torch.clamp(self.coeff / ((1 + SAFETY) * sigma), max=1.0)

    def train(self, mode: bool = True):
        if not mode and self.training and self._ready():
            self.converge()
        return super().train(mode)


class SpectralNormLinear(_SpectralNormalised):
    """``nn.Linear``-like layer ``y = W̃ x + b`` with operator norm ``‖W̃‖₂ <= coeff`` (< 1), ``(B, in) -> (B, out)``.

    Spectral normalisation as in i-ResNet (Behrmann et al. 2019, arXiv:1811.00995, sec. 3 and
    algorithm 1) and Residual Flows (Chen et al. 2019, arXiv:1906.02735): the largest singular value
    ``σ`` of ``W`` is estimated by power iteration, ``σ̂ = ‖W v‖`` with unit vectors ``u`` (out,) and
    ``v`` (in,) kept as **buffers** (so a checkpoint restores them), and the weight used is

        ``W̃ = W · min(1, coeff / ((1 + SAFETY) σ̂))``:

    it **only shrinks** ``W`` when its norm exceeds ``coeff`` (as in both papers), with a relative
    margin ``SAFETY`` = 1e-3 because ``σ̂`` approaches ``σ`` from below.

    In training mode each forward runs one power step (then ``σ̂`` carries the gradient ``u vᵀ``);
    in eval mode nothing is updated and ``σ̂`` is computed from the stored ``v`` and the current
    weight. Switching to eval runs :meth:`converge` (power iteration to convergence), so that the
    estimate used for evaluation and sampling keeps ``‖W̃‖₂ <= coeff``. The initial vectors come from
    torch's global RNG and are converged at construction.

    >>> layer = SpectralNormLinear(3, 4, coeff=0.9)
    >>> _ = layer.eval()
    >>> bool(torch.linalg.matrix_norm(layer.normalised_weight(), ord=2) <= 0.9)
    True
    """

    def __init__(self, in_features: int, out_features: int, *, coeff: float = 0.97, bias: bool = True):
        super().__init__(coeff)
        lin = nn.Linear(in_features, out_features, bias=bias)  # PyTorch's default initialisation
        self.in_features, self.out_features = in_features, out_features
        self.weight = lin.weight
        self.bias = lin.bias
        self.register_buffer("u", _normalise(torch.randn(out_features)))
        self.register_buffer("v", _normalise(torch.randn(in_features)))
        self.converge()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, coeff={self.coeff}"

    def _apply_weight(self, v):
        return self.weight @ v

    def _apply_adjoint(self, u):
        return self.weight.t() @ u

    def normalised_weight(self) -> torch.Tensor:
        """``W̃`` as the next forward would use it (in training mode this runs a power step)."""
        return self.weight * self._scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalised_weight(), self.bias)


class SpectralNormConv2d(_SpectralNormalised):
    """Conv2d-like layer whose *convolution operator* has norm <= ``coeff``: ``(B, C_in, H, W) -> (B, C_out, ...)``.

    The norm that bounds the Lipschitz constant is that of the linear map the convolution applies to
    a whole image, not that of the kernel reshaped to a matrix (which can be smaller or larger).
    As in Residual Flows (Chen et al. 2019, arXiv:1906.02735, sec. 4 and appendix) it is estimated by
    power iteration with ``conv2d`` and its adjoint ``conv_transpose2d`` at the input's spatial size:
    buffers ``v`` (C_in, H, W) and ``u`` (C_out, H', W'). Otherwise as :class:`SpectralNormLinear`:
    ``W̃ = W · min(1, coeff / ((1 + SAFETY) σ̂))`` (only shrinks), one power step per training
    forward, none in eval, convergence when switching to eval.

    The vectors are created (from torch's global RNG) and converged at the first forward, and again
    if the input's spatial size changes (the operator norm depends on it with zero padding).
    Checkpoints restore them whatever their size. Only ``groups=1``, ``dilation=1``.

    >>> layer = SpectralNormConv2d(2, 3, 3, padding=1)
    >>> layer(torch.randn(5, 2, 6, 6)).shape
    torch.Size([5, 3, 6, 6])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        coeff: float = 0.97,
        bias: bool = True,
    ):
        super().__init__(coeff)
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.weight = conv.weight
        self.bias = conv.bias
        self.register_buffer("u", torch.empty(0))  # sized at the first forward
        self.register_buffer("v", torch.empty(0))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, coeff={self.coeff}"
        )

    def _apply_weight(self, v):
        return F.conv2d(v.unsqueeze(0), self.weight, stride=self.stride, padding=self.padding)[0]

    def _apply_adjoint(self, u):
        h, w = self.v.shape[1:]
        k, s, p = self.kernel_size, self.stride, self.padding
        out_pad = (h - ((u.shape[1] - 1) * s - 2 * p + k), w - ((u.shape[2] - 1) * s - 2 * p + k))
        return F.conv_transpose2d(u.unsqueeze(0), self.weight, stride=s, padding=p, output_padding=out_pad)[0]

    @torch.no_grad()
    def _init_vectors(self, x: torch.Tensor) -> None:
        self.v = _normalise(torch.randn(x.shape[1:], dtype=self.weight.dtype, device=self.weight.device))
        self.u = _normalise(self._apply_weight(self.v))
        self.converge()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in ("u", "v"):  # the checkpoint's vectors may be sized for an input we have not seen
            if prefix + name in state_dict:
                shape = state_dict[prefix + name].shape
                setattr(self, name, torch.empty(shape, dtype=self.weight.dtype, device=self.weight.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def normalised_weight(self, x: torch.Tensor | None = None) -> torch.Tensor:
        """``W̃`` for inputs like ``x`` (B, C_in, H, W) (default: the size last seen)."""
        if x is not None and tuple(self.v.shape) != tuple(x.shape[1:]):
            self._init_vectors(x)
        if not self._ready():
            raise RuntimeError("SpectralNormConv2d: the input size is not known yet; pass x or run a forward pass")
        return self.weight * self._scale()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.normalised_weight(x), self.bias, stride=self.stride, padding=self.padding)


class LipSwish(nn.Module):
    """``LipSwish(x) = x σ(βx) / 1.1`` with learnable ``β > 0``: a smooth activation with Lip <= 1, any shape.

    Residual Flows (Chen et al. 2019, arXiv:1906.02735, sec. 4): Swish's derivative lies in about
    [-0.1, 1.0998] for every ``β > 0``, so dividing by 1.1 makes it 1-Lipschitz; unlike ELU or tanh its
    second derivative does not vanish where the first saturates. ``β = softplus(β')``, initial ``β = 1``.

    >>> LipSwish()(torch.tensor([0.0, 10.0]))
    tensor([0.0000, 9.0905], grad_fn=<DivBackward0>)
    """

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta_raw = nn.Parameter(torch.tensor(math.log(math.expm1(beta))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(F.softplus(self.beta_raw) * x) / 1.1


def lipschitz_mlp(features: int, hidden: Sequence[int] = (64, 64), coeff: float = 0.97) -> nn.Sequential:
    """Residual branch for vectors ``(B, D) -> (B, D)``: spectrally normalised linear layers and LipSwish.

    ``features -> hidden[0] -> ... -> features``; each layer has norm <= ``coeff`` and LipSwish is
    1-Lipschitz, so the branch is a contraction with Lip <= ``coeff ** (len(hidden) + 1)``.

    >>> lipschitz_mlp(2, hidden=(8, 8))(torch.randn(4, 2)).shape
    torch.Size([4, 2])
    """
    dims = [features, *hidden, features]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(SpectralNormLinear(a, b, coeff=coeff))
        if i < len(dims) - 2:
            layers.append(LipSwish())
    return nn.Sequential(*layers)


def lipschitz_convnet(channels: int, hidden_channels: int, kernel_size: int = 3, coeff: float = 0.97) -> nn.Sequential:
    """Residual branch for images ``(B, C, H, W) -> (B, C, H, W)``: conv k×k, 1×1, k×k with LipSwish.

    The layout of Residual Flows' image blocks (Chen et al. 2019, arXiv:1906.02735): spectrally
    normalised convolutions (operator norm <= ``coeff`` each, "same" zero padding, odd
    ``kernel_size``) with LipSwish between them; Lip <= ``coeff ** 3``.

    >>> lipschitz_convnet(3, 8)(torch.randn(2, 3, 5, 5)).shape
    torch.Size([2, 3, 5, 5])
    """
    if kernel_size % 2 != 1:
        raise ConfigError(f"lipschitz_convnet needs an odd kernel_size (same padding), got {kernel_size}")
    pad = kernel_size // 2
    return nn.Sequential(
        SpectralNormConv2d(channels, hidden_channels, kernel_size, padding=pad, coeff=coeff),
        LipSwish(),
        SpectralNormConv2d(hidden_channels, hidden_channels, 1, coeff=coeff),
        LipSwish(),
        SpectralNormConv2d(hidden_channels, channels, kernel_size, padding=pad, coeff=coeff),
    )


@contextlib.contextmanager
def _no_power_updates(module: nn.Module) -> Iterator[None]:
    """Inside, spectrally normalised layers use their stored vectors even in training mode."""
    layers = [m for m in module.modules() if isinstance(m, _SpectralNormalised)]
    saved = [m._frozen for m in layers]
    for m in layers:
        m._frozen = True
    try:
        yield
    finally:
        for m, s in zip(layers, saved):
            m._frozen = s


def converge_spectral_norms(module: nn.Module, max_iters: int = 1000, tol: float | None = None) -> None:
    """Run :meth:`SpectralNormLinear.converge` on every spectrally normalised layer of ``module``.

    Layers that have not seen an input yet (convolutions) are skipped.
    """
    for m in module.modules():
        if isinstance(m, _SpectralNormalised) and m._ready():
            m.converge(max_iters, tol)


def set_log_det_mode(module: nn.Module, mode: str) -> None:
    """Set ``log_det_mode`` of every :class:`ResidualBlock` in ``module`` (e.g. "exact" for evaluation)."""
    for m in module.modules():
        if isinstance(m, ResidualBlock):
            m.log_det_mode = mode


class ResidualBlock(Bijector):
    """Invertible residual block ``z = x + g(x)``, data -> latent, for a contraction ``g`` (Lip(g) < 1).

    i-ResNet (Behrmann et al. 2019, arXiv:1811.00995) and Residual Flows (Chen et al. 2019,
    arXiv:1906.02735). ``g`` maps ``(B, *shape)`` to the same shape, examples independently:
    :func:`lipschitz_mlp` for vectors ``(B, D)``, :func:`lipschitz_convnet` for images
    ``(B, C, H, W)``, or any module whose Lipschitz constant is < 1 (not checked: with Lip(g) >= 1 the
    map need not be invertible and the series below diverge).

    Inverse (latent -> data): the fixed-point iteration ``x <- z - g(x)`` (i-ResNet, algorithm 1),
    which converges geometrically at rate Lip(g), run to float resolution (``inverse_tol``, default
    a few ulps of the largest ``|z|``) or ``inverse_iters`` steps. It runs without gradients
    (sampling, not training through the inverse); its log-det is minus the forward log-det at the
    solution, computed in the current mode. The spectral norms are not updated by the inverse.

    Log-determinant ``log|det(I + J_g(x))|``, by ``log_det`` mode (switch on a built block with the
    ``log_det_mode`` attribute or :func:`set_log_det_mode`, e.g. train with "roulette" and evaluate
    with "exact" on 2-D data):

    * ``"exact"``: ``slogdet(I + J_g)`` of the autograd Jacobian of each example (``D`` backward passes,
      ``D`` = entries per example); refused above ``exact_max_dim`` (256) entries;
    * ``"series"``: the power series ``log det(I + J) = Σ_{k>=1} (-1)^{k+1} tr(J^k)/k`` (i-ResNet
      eq. 3-4) truncated after ``n_terms`` terms, each trace by Hutchinson's estimator
      ``tr(J^k) ≈ εᵀ J^k ε`` with ``n_probes`` probes per example (vector-Jacobian products); biased
      by the truncation;
    * ``"roulette"``: the unbiased Russian-roulette estimator (Residual Flows eq. 6-7): the first
      ``n_exact_terms`` terms are always computed; beyond them, a draw ``N ~ Geometric(geometric_p)``
      on {0, 1, ...} (one per forward, shared by the batch) adds terms ``k = n_exact_terms + 1 ..
      n_exact_terms + N``, each divided by ``P(N >= k - n_exact_terms) = (1 - p)^(k - n_exact_terms)``.
      The expected number of terms is ``n_exact_terms + (1 - p)/p``. The variance is finite only
      when the terms shrink faster than their weights grow, roughly ``‖J_g‖² < 1 - p``; trained
      branches are usually far below their Lipschitz bound, but lower ``p`` if estimates are noisy.

    Gradients flow through every estimator (backpropagation through the vector-Jacobian products,
    ``create_graph`` when grad is enabled); with grad disabled the outputs carry none.
    ``log_det_is_exact`` is True only in "exact" mode.

    Randomness: Hutchinson probes (``probe="gaussian"`` N(0, I) or ``"rademacher"`` ±1) and the
    roulette draw come from ``generator`` when one is given (it must live on the input's device), else
    from torch's global RNG.

    Args:
        g: the residual branch.
        log_det: "exact", "series" or "roulette".
        n_terms: terms of the truncated series ("series").
        n_probes: Hutchinson probes per example ("series", "roulette").
        geometric_p: success probability of the roulette's geometric draw, in (0, 1).
        n_exact_terms: terms always computed by the roulette.
        probe: "gaussian" or "rademacher".
        exact_max_dim: the largest example size accepted by "exact".
        inverse_iters, inverse_tol: of the fixed-point inverse.
        generator: optional ``torch.Generator`` for the probes and draws.

    >>> block = ResidualBlock(lipschitz_convnet(2, 8), log_det="series", n_terms=4)
    >>> z, log_det = block(torch.randn(3, 2, 4, 4))
    >>> z.shape, log_det.shape, block.log_det_is_exact
    (torch.Size([3, 2, 4, 4]), torch.Size([3]), False)
    """

    def __init__(
        self,
        g: nn.Module,
        *,
        log_det: str = "exact",
        n_terms: int = 10,
        n_probes: int = 1,
        geometric_p: float = 0.5,
        n_exact_terms: int = 2,
        probe: str = "gaussian",
        exact_max_dim: int = 256,
        inverse_iters: int = 1000,
        inverse_tol: float | None = None,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if n_terms < 1 or n_probes < 1 or n_exact_terms < 0:
            raise ConfigError(
                f"ResidualBlock needs n_terms >= 1, n_probes >= 1, n_exact_terms >= 0; "
                f"got {n_terms}, {n_probes}, {n_exact_terms}"
            )
        if not 0 < geometric_p < 1:
            raise ConfigError(f"ResidualBlock: geometric_p must be in (0, 1), got {geometric_p}")
        if probe not in ("gaussian", "rademacher"):
            raise ConfigError(f"ResidualBlock: probe must be 'gaussian' or 'rademacher', got {probe!r}")
        self.g = g
        self.log_det_mode = log_det
        self.n_terms, self.n_probes = int(n_terms), int(n_probes)
        self.geometric_p, self.n_exact_terms = float(geometric_p), int(n_exact_terms)
        self.probe, self.exact_max_dim = probe, int(exact_max_dim)
        self.inverse_iters, self.inverse_tol = int(inverse_iters), inverse_tol
        self.generator = generator

    @property
    def log_det_mode(self) -> str:
        """How the log-determinant is computed: "exact", "series" or "roulette" (settable)."""
        return self._log_det_mode

    @log_det_mode.setter
    def log_det_mode(self, mode: str) -> None:
        if mode not in LOG_DET_MODES:
            raise ConfigError(f"ResidualBlock: log_det must be one of {', '.join(LOG_DET_MODES)}, got {mode!r}")
        self._log_det_mode = mode

    @property
    def log_det_is_exact(self) -> bool:
        """True when ``forward`` returns the exact log-determinant (mode "exact"), not an estimate."""
        return self._log_det_mode == "exact"

    def extra_repr(self) -> str:
        return f"log_det={self._log_det_mode!r}"

    # -- log-determinants --------------------------------------------------------------------------

    def _vjp(self, gx, x, w, create_graph):
        (out,) = torch.autograd.grad(gx, x, w, retain_graph=True, create_graph=create_graph, allow_unused=True)
        return torch.zeros_like(x) if out is None else out

    def _exact(self, gx, x, create_graph):
        b, d = x.shape[0], x[0].numel()
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        if not gx.requires_grad:  # g does not depend on x
            return x.new_zeros(b)
        rows = []
        for i in range(d):  # row i of J: d g_i / dx for every example at once (examples are independent)
            e = torch.zeros(b, d, dtype=x.dtype, device=x.device)
            e[:, i] = 1
            rows.append(self._vjp(gx, x, e.view_as(gx), create_graph).reshape(b, d))
        return torch.linalg.slogdet(eye + torch.stack(rows, 1)).logabsdet

    def _draw_probe(self, x):
        gen = self.generator
        if self.probe == "gaussian":
            return torch.randn(x.shape, generator=gen, dtype=x.dtype, device=x.device)
        return torch.randint(0, 2, x.shape, generator=gen, device=x.device).to(x.dtype) * 2 - 1

    def _draw_geometric(self) -> int:
        """``N`` on {0, 1, ...} with ``P(N >= j) = (1 - p)^j``, by inversion of a uniform draw."""
        gen = self.generator
        u = torch.rand((), generator=gen, dtype=torch.float64, device=gen.device if gen is not None else "cpu")
        return int(math.floor(math.log1p(-u.item()) / math.log1p(-self.geometric_p)))

    def _series(self, gx, x, coeffs, create_graph):
        """``Σ_k coeffs[k-1] tr(J^k)`` with Hutchinson's estimator, averaged over ``n_probes`` probes."""
        total = x.new_zeros(x.shape[0])
        if not gx.requires_grad:
            return total
        for _ in range(self.n_probes):
            eps = self._draw_probe(x)
            w = eps
            for c in coeffs:
                w = self._vjp(gx, x, w, create_graph)  # w = εᵀ J^k
                total = total + c * sum_except_batch(w * eps)
        return total / self.n_probes

    def _log_det(self, gx, x, create_graph):
        mode = self._log_det_mode
        if mode == "exact":
            return self._exact(gx, x, create_graph)
        if mode == "series":
            n, weight = self.n_terms, [1.0] * self.n_terms
        else:
            m, q = self.n_exact_terms, 1 - self.geometric_p
            n = m + self._draw_geometric()
            weight = [1.0 if k <= m else q ** -(k - m) for k in range(1, n + 1)]
        coeffs = [(-1) ** (k + 1) / k * weight[k - 1] for k in range(1, n + 1)]
        return self._series(gx, x, coeffs, create_graph)

    # -- the bijector ------------------------------------------------------------------------------

    def forward(self, x, context=None):
        d = x[0].numel()
        if self._log_det_mode == "exact" and d > self.exact_max_dim:
            raise ConfigError(
                f"ResidualBlock: log_det='exact' builds the {d}x{d} Jacobian of each example, which is only "
                f"meant for up to exact_max_dim={self.exact_max_dim} entries; use 'series' or 'roulette' "
                "(set block.log_det_mode), or raise exact_max_dim"
            )
        grad_on = torch.is_grad_enabled()
        with torch.enable_grad():
            xi = x if x.requires_grad else x.detach().requires_grad_()
            gx = self.g(xi)
            if gx.shape != x.shape:
                raise ValueError(f"ResidualBlock: g maps {tuple(x.shape)} to {tuple(gx.shape)}; it must keep the shape")
            log_det = self._log_det(gx, xi, create_graph=grad_on)
            z = xi + gx
        if not grad_on:
            z, log_det = z.detach(), log_det.detach()
        return z, log_det

    def inverse(self, z, context=None):
        tol = self.inverse_tol
        if tol is None:  # a few ulps: the iteration stops once only rounding moves it
            tol = 32 * torch.finfo(z.dtype).eps * max(1.0, z.detach().abs().max().item())
        with _no_power_updates(self.g):
            x = fixed_point_inverse(self.g, z.detach(), iters=self.inverse_iters, tol=tol)
            _, log_det = self.forward(x)
        return x, -log_det.detach()
