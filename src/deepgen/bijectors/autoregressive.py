"""Masked autoregressive flows: MAF, its spline version (NSF), and IAF, on vectors (B, D).

A masked autoregressive layer transforms each entry ``x_i`` by a monotone scalar map whose parameters
a MADE network (:class:`deepgen.nn.MADENetwork`) computes from the entries before ``i`` in an
ordering: ``z_i = tau(x_i; theta_i(x_<i))``. The Jacobian ``dz/dx`` is triangular in that ordering,
so ``log|det dz/dx| = sum_i log|tau'(x_i)|``.

* **density** (``forward``, data -> latent) is one MADE pass: every ``theta_i`` is computed from ``x``
  at once;
* **sampling** (``inverse``, latent -> data) is D sequential passes: ``x_i`` needs ``x_<i`` first.

:class:`InverseAutoregressive` (IAF) is the same layer run the other way round: one pass to sample,
D passes for a density.

>>> _ = torch.manual_seed(0)
>>> maf = MaskedAffineAutoregressive(3, hidden=(16,), zero_init=False)
>>> x = torch.randn(5, 3)
>>> z, log_det = maf(x)  # density direction: one MADE pass
>>> x2, inv_log_det = maf.inverse(z)  # sampling direction: 3 MADE passes
>>> torch.allclose(x2, x, atol=1e-5), torch.allclose(inv_log_det, -log_det, atol=1e-5)
(True, True)
>>> maf
MaskedAffineAutoregressive(features=3, hidden=(16,), order='natural', scale='softclamp', clamp=3.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from deepgen.bijectors.base import Bijector, Inverse, zero_log_det
from deepgen.bijectors.splines import RQSplineTransform
from deepgen.bijectors.transforms import AffineTransform, ElementwiseTransform, context_vector
from deepgen.nn.made import MADENetwork


def _order_tensor(features: int, order: str | Sequence[int]) -> str | list[int]:
    """What MADENetwork takes: ``"natural"``/``"random"``, or an explicit permutation (``"reverse"``)."""
    if isinstance(order, str):
        if order == "reverse":
            return list(range(features - 1, -1, -1))
        if order not in ("natural", "random"):
            raise ValueError(f"order must be natural, reverse, random or a permutation, got {order!r}")
        return order
    perm = [int(i) for i in order]
    if sorted(perm) != list(range(features)):
        raise ValueError(f"order must be a permutation of 0..{features - 1}, got {perm}")
    return perm


class MaskedAutoregressive(Bijector):
    """Masked autoregressive layer with any elementwise law (Papamakarios et al. 2017, arXiv:1705.07057).

    MAF (section 3, eqs. 2-5) transforms ``x_i`` by an affine map whose shift and log-scale a MADE
    computes from ``x_<i``; here the map is any :class:`ElementwiseTransform` (affine: MAF;
    rational-quadratic spline: the autoregressive neural spline flow of Durkan et al. 2019,
    arXiv:1906.04032, section 3.2). Direction data -> latent, on vectors only:

    * ``forward(x)``: ``x`` (B, D) -> ``(z, log|det dz/dx|)``, ``z_i = tau(x_i; MADE(x)_i)``, one pass;
    * ``inverse(z)``: ``z`` (B, D) -> ``(x, log|det dx/dz|)`` by D MADE passes in the ordering; pass
      ``k`` fixes entry ``order[k]`` from the already exact earlier ones, so the inverse is exact.

    Args:
        features: D, the size of the vectors (flatten images first, ``x.flatten(1)``).
        transform: the elementwise law; MADE outputs its ``num_params`` parameters per entry.
        hidden: MADE hidden layer sizes.
        context_features: F for a conditional layer: ``context`` is ``(B,)`` integer labels (one-hot
            over F classes) or ``(B, F)`` floats, fed to the MADE through unmasked linear maps into
            its first hidden layer and its outputs (see :class:`deepgen.nn.MADENetwork`), so every
            entry, the first of the ordering included, is conditioned. ``None``: unconditional, and
            ``context`` is ignored.
        order: ``"natural"`` (entry 0 first), ``"reverse"``, ``"random"`` (seeded) or an explicit
            permutation listing the entries in the order they are generated. Stack layers with
            different orders (or a permutation between them) so every entry gets to condition on
            every other.
        zero_init: zero the MADE's last layer (and the context's direct path to the outputs), so the
            layer starts at the identity (needs a law that is the identity at zero parameters, as the
            affine and spline laws are).
        seed: seed of the MADE's random degrees (and of the ``"random"`` ordering).
    """

    def __init__(
        self,
        features: int,
        transform: ElementwiseTransform,
        hidden: Sequence[int] = (64, 64),
        *,
        context_features: int | None = None,
        order: str | Sequence[int] = "natural",
        zero_init: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        if not isinstance(transform, ElementwiseTransform):
            raise TypeError(f"transform must be an ElementwiseTransform, got {type(transform).__name__}")
        if features < 1:
            raise ValueError(f"features must be positive, got {features}")
        self.features, self.hidden_sizes = int(features), tuple(int(h) for h in hidden)
        self.context_features = context_features
        self.order_spec = order if isinstance(order, str) else tuple(int(i) for i in order)
        self.transform = transform
        self.made = MADENetwork(
            features,
            transform.num_params,
            self.hidden_sizes,
            order=_order_tensor(features, order),
            seed=seed,
            context_features=context_features,
        )
        if zero_init:
            with torch.no_grad():
                self.made.output.weight.zero_()
                self.made.output.bias.zero_()
                if self.made.context_output is not None:
                    self.made.context_output.weight.zero_()  # context straight into the outputs

    # -- repr ---------------------------------------------------------------------------------------
    def _describe(self) -> list[str]:
        out = [f"features={self.features}", f"hidden={self.hidden_sizes}", f"order={self.order_spec!r}"]
        if self.context_features is not None:
            out.append(f"context_features={self.context_features}")
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._describe())})"

    # -- helpers ------------------------------------------------------------------------------------
    def _check(self, v: torch.Tensor, what: str) -> None:
        if v.dim() != 2 or v.shape[1] != self.features:
            raise ValueError(
                f"{type(self).__name__} transforms vectors of shape (B, {self.features}); got {what} of shape "
                f"{tuple(v.shape)} (flatten images first, e.g. x.flatten(1))"
            )

    def _context(self, context: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
        if self.context_features is None:
            return None  # unconditional layers ignore the context (Compose hands it to every member)
        ctx = context_vector(context, self.context_features, like)
        if ctx is None:
            raise ValueError(
                f"{type(self).__name__} was built with context_features={self.context_features}: pass context, "
                "(B,) integer labels or (B, F) floats"
            )
        return ctx

    def order(self) -> torch.Tensor:
        """(D,) the ordering: ``order()[0]`` is generated first (its parameters depend on the context only)."""
        return self.made.order()

    # -- directions ---------------------------------------------------------------------------------
    def forward(self, x, context=None):
        self._check(x, "x")
        params = self.made(x, self._context(context, x))  # (B, D, P)
        z, log_deriv = self.transform(x, params)
        return z, log_deriv.sum(1)

    def inverse(self, z, context=None):
        self._check(z, "z")
        ctx = self._context(context, z)
        x = torch.zeros_like(z)
        log_det = zero_log_det(z)
        positions = torch.arange(self.features, device=z.device)
        for d in self.order().tolist():
            params = self.made(x, ctx)[:, d]  # depends only on entries already fixed
            xd, ld = self.transform.inverse(z[:, d], params)
            x = torch.where(positions == d, xd[:, None], x)  # out of place: autograd keeps earlier passes
            log_det = log_det + ld
        return x, log_det


class MaskedAffineAutoregressive(MaskedAutoregressive):
    """MAF layer (Papamakarios et al. 2017, arXiv:1705.07057, eqs. 2-5): ``z_i = x_i exp(s_i) + t_i``.

    ``(s_i, t_i) = MADE(x_<i)``: the paper's density direction ``u_i = (x_i - mu_i) exp(-alpha_i)``
    with ``s = -alpha``, ``t = -mu exp(-alpha)``. Vectors (B, D); ``forward`` (density) is one pass,
    ``inverse`` (sampling) D passes. ``scale``/``clamp`` choose how the raw log-scale is bounded
    (:class:`~deepgen.bijectors.transforms.AffineTransform`); other arguments as in
    :class:`MaskedAutoregressive`.

    >>> MaskedAffineAutoregressive(4, (32, 32), order="reverse")
    MaskedAffineAutoregressive(features=4, hidden=(32, 32), order='reverse', scale='softclamp', clamp=3.0)
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (64, 64),
        *,
        scale: str = "softclamp",
        clamp: float = 3.0,
        context_features: int | None = None,
        order: str | Sequence[int] = "natural",
        zero_init: bool = True,
        seed: int = 0,
    ):
        super().__init__(
            features,
            AffineTransform(scale, clamp),
            hidden,
            context_features=context_features,
            order=order,
            zero_init=zero_init,
            seed=seed,
        )

    def _describe(self) -> list[str]:
        return [*super()._describe(), self.transform.extra_repr()]


class MaskedSplineAutoregressive(MaskedAutoregressive):
    """Autoregressive neural spline flow layer (Durkan et al. 2019, arXiv:1906.04032, sections 3.1-3.2).

    ``z_i = RQS(x_i; MADE(x_<i))``: a monotone rational-quadratic spline with ``num_bins`` bins on
    ``[-bound, bound]`` and identity tails (:class:`~deepgen.bijectors.splines.RQSplineTransform`,
    ``3 num_bins - 1`` parameters per entry). Vectors (B, D); ``forward`` (density) is one pass,
    ``inverse`` (sampling) D passes, each with the spline's closed-form inverse. Other arguments as
    in :class:`MaskedAutoregressive`.

    >>> MaskedSplineAutoregressive(4, (32,), num_bins=6, bound=4.0)
    MaskedSplineAutoregressive(features=4, hidden=(32,), order='natural', num_bins=6, bound=4.0)
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (64, 64),
        num_bins: int = 8,
        bound: float = 3.0,
        *,
        min_bin_width: float = 1e-3,
        min_bin_height: float = 1e-3,
        min_derivative: float = 1e-3,
        context_features: int | None = None,
        order: str | Sequence[int] = "natural",
        zero_init: bool = True,
        seed: int = 0,
    ):
        spline = RQSplineTransform(
            num_bins,
            bound,
            min_bin_width=min_bin_width,
            min_bin_height=min_bin_height,
            min_derivative=min_derivative,
        )
        super().__init__(
            features,
            spline,
            hidden,
            context_features=context_features,
            order=order,
            zero_init=zero_init,
            seed=seed,
        )

    def _describe(self) -> list[str]:
        return [*super()._describe(), self.transform.extra_repr()]


class InverseAutoregressive(Inverse):
    """IAF layer (Kingma et al. 2016, arXiv:1606.04934, section 5): the inverse of a MAF layer.

    Sampling (``inverse``, latent -> data) is one MADE pass: ``x_i = z_i exp(s_i) + t_i`` with
    ``(s_i, t_i) = MADE(z_<i)`` -- the paper's ``z_t = mu_t + sigma_t * z_{t-1}`` with the MADE reading
    the *noise*. Density (``forward``, data -> latent) needs D sequential passes. Vectors (B, D).
    Takes the arguments of :class:`MaskedAffineAutoregressive`, which it wraps as ``self.b``
    (``forward = b.inverse``, ``inverse = b.forward``).

    >>> iaf = InverseAutoregressive(3, (16,), zero_init=False)
    >>> x, log_det = iaf.inverse(torch.randn(5, 3))  # sampling: one pass
    >>> iaf
    InverseAutoregressive(features=3, hidden=(16,), order='natural', scale='softclamp', clamp=3.0)
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (64, 64),
        *,
        scale: str = "softclamp",
        clamp: float = 3.0,
        context_features: int | None = None,
        order: str | Sequence[int] = "natural",
        zero_init: bool = True,
        seed: int = 0,
    ):
        maf = MaskedAffineAutoregressive(
            features,
            hidden,
            scale=scale,
            clamp=clamp,
            context_features=context_features,
            order=order,
            zero_init=zero_init,
            seed=seed,
        )
        super().__init__(maf)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.b._describe())})"


__all__ = [
    "MaskedAutoregressive",
    "MaskedAffineAutoregressive",
    "MaskedSplineAutoregressive",
    "InverseAutoregressive",
]
