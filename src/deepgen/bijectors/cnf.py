"""Continuous normalizing flows (FFJORD): a bijector defined by an ODE, with its log-det as a time integral.

A continuous flow moves a point along ``dx/dt = f(t, x)``; the map from time 0 to time ``t1`` is
invertible (integrate backwards) and, by the instantaneous change of variables (Chen et al. 2018,
arXiv:1806.07366, Theorem 1), ``d/dt log|det dx(t)/dx(0)| = tr(df/dx)``. So for
``z = x(t1)`` started at ``x(0) = x``

    log|det dz/dx| = int_0^t1 tr(df/dx(t, x(t))) dt,

a trace rather than a determinant: any smooth network can be the field (FFJORD, Grathwohl et al.
2019, arXiv:1810.01367). The trace is exact (D backward passes per evaluation, for low dimension)
or Hutchinson's unbiased estimate ``E[e^T (df/dx) e]`` (one vector-Jacobian product per probe).

* :class:`ConcatSquashLinear` and :class:`ODENet`: FFJORD's time-dependent field for vectors (B, D).
* :class:`ContinuousFlow`: the bijector, data (t = 0) -> latent (t = t1), solved by the shared
  integrator :func:`deepgen.samplers.odeint_log_density`.

>>> _ = torch.manual_seed(0)
>>> flow = ContinuousFlow(ODENet(2, hidden=(8,)), method="rk4", steps=4).eval()
>>> z, log_det = flow(torch.randn(5, 2))  # data -> latent, exact trace in eval mode (D = 2)
>>> z.shape, log_det.shape, flow.log_det_is_exact, flow.last_nfe
(torch.Size([5, 2]), torch.Size([5]), True, 16)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.bijectors.base import Bijector
from deepgen.bijectors.transforms import context_vector
from deepgen.samplers.divergence import PROBES, sample_probes
from deepgen.samplers.ode import ORDERS, odeint, odeint_log_density

DIVERGENCES = ("exact", "hutchinson", "auto")
ACTIVATIONS = {"softplus": F.softplus, "tanh": torch.tanh}


class ConcatSquashLinear(nn.Module):
    """FFJORD's time-conditioned linear layer: ``(W x + b) * sigmoid(W_g c + b_g) + W_b c``.

    ``c`` is the conditioning row of each example: the time ``t`` (and, in a conditional field, the
    context vector after it), shape ``(B, cond_features)``. The gate rescales each output unit and
    the hyper-bias shifts it as functions of ``c``, so one set of weights serves every time (the
    layer of Grathwohl et al. 2019, arXiv:1810.01367, used for their tabular and toy fields).

    >>> layer = ConcatSquashLinear(3, 5)
    >>> layer(torch.randn(4, 3), torch.full((4, 1), 0.5)).shape
    torch.Size([4, 5])
    """

    def __init__(self, in_features: int, out_features: int, cond_features: int = 1):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.gate = nn.Linear(cond_features, out_features)
        self.hyper_bias = nn.Linear(cond_features, out_features, bias=False)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """``x`` (B, in_features), ``cond`` (B, cond_features) -> (B, out_features)."""
        return self.linear(x) * torch.sigmoid(self.gate(cond)) + self.hyper_bias(cond)


class ODENet(nn.Module):
    """The velocity field ``f(t, x[, context])`` of a continuous flow on vectors ``(B, features)``.

    A stack of :class:`ConcatSquashLinear` layers ``features -> hidden... -> features`` with a smooth
    activation between them (``"softplus"`` or ``"tanh"``; a non-smooth one such as ReLU would make
    the adaptive solver crawl), as in FFJORD (Grathwohl et al. 2019, arXiv:1810.01367). Every layer
    sees the time, so the field is time-dependent.

    ``context_features=C`` makes the field conditional: ``context`` is ``(B,)`` labels (one-hot, C
    classes) or ``(B, C)`` floats (see :func:`~deepgen.bijectors.transforms.context_vector`), and it
    enters every layer's gate and hyper-bias next to ``t`` (conditioning row ``[t, context]``).

    ``forward(t, x, context=None)``: ``t`` a float or a tensor with one value or one per example;
    returns ``dx/dt`` of shape ``(B, features)``. Images are flattened by :class:`ContinuousFlow`, so
    a field for ``(B, C, H, W)`` data has ``features = C * H * W``.

    >>> f = ODENet(2, hidden=(16, 16), context_features=3)
    >>> f(0.5, torch.randn(4, 2), torch.tensor([0, 1, 2, 0])).shape
    torch.Size([4, 2])
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (64, 64),
        *,
        context_features: int | None = None,
        activation: str = "softplus",
    ):
        super().__init__()
        hidden = tuple(hidden)
        if isinstance(features, bool) or not isinstance(features, int) or features < 1:
            raise ValueError(f"ODENet features must be an integer >= 1, got {features!r}")
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
            raise ValueError(f"ODENet hidden must be integers >= 1, got {hidden!r}")
        if context_features is not None and (not isinstance(context_features, int) or context_features < 1):
            raise ValueError(f"ODENet context_features must be None or an integer >= 1, got {context_features!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"ODENet activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        self.features, self.hidden = features, hidden
        self.context_features, self.activation = context_features, activation
        sizes = (features, *hidden, features)
        cond = 1 + (context_features or 0)
        self.layers = nn.ModuleList(ConcatSquashLinear(a, b, cond) for a, b in zip(sizes[:-1], sizes[1:]))

    def extra_repr(self) -> str:
        ctx = f", context_features={self.context_features}" if self.context_features else ""
        return f"features={self.features}, hidden={self.hidden}{ctx}, activation={self.activation!r}"

    def forward(self, t: float | torch.Tensor, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.features:
            raise ValueError(f"ODENet expects x of shape (B, {self.features}), got {tuple(x.shape)}")
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1).expand(x.shape[0], 1)
        cond = t
        if self.context_features is not None:
            if context is None:
                raise ValueError("this ODENet is conditional (context_features set): pass context")
            cond = torch.cat([t, context_vector(context, self.context_features, x)], dim=1)
        act = ACTIVATIONS[self.activation]
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h, cond)
            if i < len(self.layers) - 1:
                h = act(h)
        return h


class ContinuousFlow(Bijector):
    """FFJORD: the flow of ``dx/dt = net(t, x[, context])`` from t = 0 (data) to t = ``t1`` (latent).

    Continuous normalizing flow of Chen et al. (2018, arXiv:1806.07366) with FFJORD's stochastic trace
    (Grathwohl et al. 2019, arXiv:1810.01367). ``forward(x)`` integrates data -> latent over [0, t1]
    with :func:`~deepgen.samplers.odeint_log_density`, which returns ``delta_logp = -int div f dt``
    (Chen et al. Theorem 1, integrated as in FFJORD: ``log p(z(t1)) = log p(z(t0)) - int tr(df/dz) dt``).
    Comparing with ``log p_X(x) = log p_Z(z) + log|det dz/dx|`` gives

        forward: log|det dz/dx| = -delta_logp = +int_0^t1 tr(df/dx) dt,

    and ``inverse(z)`` integrates t1 -> 0, where the same identity gives ``log|det dx/dz| =
    -delta_logp = -int_0^t1 tr(df/dx) dt`` (the forward log-det negated, up to solver error).

    Shapes: ``x`` is ``(B, D)`` or an image batch ``(B, C, H, W)`` (any ``(B, ...)``), which is flattened
    to ``(B, D)``, ``D = C*H*W``, before the field sees it and reshaped after, so ``net`` works on
    vectors (an :class:`ODENet` with ``features = D``). Log-dets are ``(B,)`` in the input's dtype.
    ``context`` goes to ``net(t, x, context)`` (left out when None).

    Trace: training mode uses ``train_divergence`` (default ``"hutchinson"``: ``n_probes`` ``probe``
    vectors drawn fresh for every call, from ``generator`` if given, held fixed during the solve, so
    the log-det is an unbiased estimate of the solver's exact-trace log-det, differentiable by plain
    autograd); eval mode uses ``eval_divergence``, where ``"auto"`` is the exact trace for
    ``D <= exact_max_dim`` and Hutchinson above. :attr:`log_det_is_exact` says which applies now:
    even the exact trace carries the ODE solver's error (about ``rtol``/``atol`` for rk45). With
    Hutchinson, forward and inverse draw different probes, so their log-dets cancel only on average.

    Solver: ``method="rk45"`` (adaptive Dormand-Prince with ``rtol``/``atol``, ``max_steps``) or a
    fixed-step ``"euler"``/``"heun"``/``"rk4"`` with ``steps`` (e.g. rk4 with 10 steps for fast
    training). They are plain attributes: a model may train with ``rk4`` and switch ``method``/
    ``steps`` to ``rk45`` for evaluation. :attr:`last_nfe` is the number of field evaluations of the
    last call (both directions).

    ``solver_dtype``: the dtype of the ODE state (x and the log-det integral), float64 by default in
    both modes; None keeps the input's. The network always runs in its own parameters' dtype (the
    state is cast for each evaluation; ``.double()`` the flow for a float64 field). Measured on 2-D
    data, batch 256, hidden (64, 64), one thread: a float32 state saves under 10% of a training
    step (the network dominates; a float64 network costs 1.4-1.8x), so float64 is kept for training
    too, where it makes the rk45 error control meaningful at tight tolerances.

    ``regularize=True`` adds RNODE's regularisers (Finlay et al. 2020, arXiv:2002.02798):
    during a training forward with autograd enabled, the kinetic energy ``int_0^t1 |f|^2 dt`` and
    the Jacobian Frobenius norm ``int_0^t1 |df/dx|_F^2 dt`` (estimated as ``|e^T df/dx|^2`` with the
    Hutchinson probes, reusing their vector-Jacobian products) are integrated alongside and left in
    :attr:`last_regularization` as ``{"kinetic": (B,), "jacobian": (B,)}``, differentiable; the model
    adds ``lambda_k * kinetic.mean() + lambda_j * jacobian.mean()`` to its loss. Otherwise it is None.

    >>> _ = torch.manual_seed(0)
    >>> flow = ContinuousFlow(ODENet(2, hidden=(8,)), method="rk45", rtol=1e-6, atol=1e-6).eval()
    >>> x = torch.randn(6, 2)
    >>> z, ld = flow(x)
    >>> x2, inv_ld = flow.inverse(z)
    >>> bool((x2 - x).abs().max() < 1e-4), bool((ld + inv_ld).abs().max() < 1e-4)
    (True, True)
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        t1: float = 1.0,
        method: str = "rk45",
        steps: int | None = None,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        train_divergence: str = "hutchinson",
        eval_divergence: str = "auto",
        n_probes: int = 1,
        probe: str = "rademacher",
        exact_max_dim: int = 16,
        solver_dtype: torch.dtype | None = torch.float64,
        max_steps: int = 10_000,
        regularize: bool = False,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        t1 = float(t1)
        if not (math.isfinite(t1) and t1 > 0):
            raise ValueError(f"ContinuousFlow t1 must be a finite number > 0, got {t1}")
        if method not in ORDERS:
            raise ValueError(f"ContinuousFlow method must be one of {tuple(ORDERS)}, got {method!r}")
        if (method == "rk45") != (steps is None):
            raise ValueError("ContinuousFlow: pass steps for a fixed-step method and steps=None for rk45")
        for name, value in (("train_divergence", train_divergence), ("eval_divergence", eval_divergence)):
            if value not in DIVERGENCES:
                raise ValueError(f"ContinuousFlow {name} must be one of {DIVERGENCES}, got {value!r}")
        if probe not in PROBES:
            raise ValueError(f"ContinuousFlow probe must be one of {PROBES}, got {probe!r}")
        if not (solver_dtype is None or isinstance(solver_dtype, torch.dtype)):
            raise ValueError(f"ContinuousFlow solver_dtype must be None or a torch dtype, got {solver_dtype!r}")
        self.net = net
        self.t1, self.method, self.steps, self.rtol, self.atol = t1, method, steps, rtol, atol
        self.train_divergence, self.eval_divergence = train_divergence, eval_divergence
        self.n_probes, self.probe, self.exact_max_dim = n_probes, probe, exact_max_dim
        self.solver_dtype, self.max_steps, self.regularize = solver_dtype, max_steps, regularize
        self.generator = generator
        #: field evaluations of the last forward or inverse call
        self.last_nfe: int | None = None
        #: RNODE terms of the last regularised training forward, else None
        self.last_regularization: dict[str, torch.Tensor] | None = None
        self._last_dim: int | None = getattr(net, "features", None)

    def extra_repr(self) -> str:
        solver = f"rtol={self.rtol:g}, atol={self.atol:g}" if self.method == "rk45" else f"steps={self.steps}"
        return f"t1={self.t1:g}, method={self.method!r}, {solver}"

    def _divergence(self, dim: int | None) -> str:
        mode = self.train_divergence if self.training else self.eval_divergence
        if mode == "auto":
            return "exact" if dim is not None and dim <= self.exact_max_dim else "hutchinson"
        return mode

    @property
    def log_det_is_exact(self) -> bool:
        """True when the current mode uses the exact trace (the log-det is then exact up to the ODE
        solver's error); False for Hutchinson's unbiased estimate. Under ``"auto"`` the dimension is
        ``net.features`` or that of the last input (False before any call if ``net`` has none)."""
        return self._divergence(self._last_dim) == "exact"

    def forward(self, x, context=None):
        return self._solve(x, context, 0.0, self.t1)

    def inverse(self, z, context=None):
        return self._solve(z, context, self.t1, 0.0)

    def _solve(self, x: torch.Tensor, context, t0: float, t1: float) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or not x.is_floating_point():
            raise ValueError(f"ContinuousFlow expects a floating batch (B, ...), got {getattr(x, 'shape', x)}")
        flat = x.reshape(x.shape[0], -1)
        self._last_dim = flat.shape[1]
        divergence = self._divergence(flat.shape[1])
        dtype = x.dtype if self.solver_dtype is None else self.solver_dtype
        param = next(self.net.parameters(), None)
        net_dtype = param.dtype if param is not None else None
        nfe = 0

        def field(t: float, v: torch.Tensor) -> torch.Tensor:
            nonlocal nfe
            nfe += 1
            v_in = v if net_dtype is None else v.to(net_dtype)
            out = self.net(t, v_in) if context is None else self.net(t, v_in, context)
            return out.to(v.dtype)

        solver = dict(method=self.method, steps=self.steps, rtol=self.rtol, atol=self.atol, max_steps=self.max_steps)
        self.last_regularization = None
        if self.regularize and self.training and t1 > t0 and torch.is_grad_enabled():
            out, dlogp, kinetic, jacobian = self._regularized(field, flat.to(dtype), t0, t1, divergence, solver)
            self.last_regularization = {"kinetic": kinetic, "jacobian": jacobian}
        else:
            out, dlogp = odeint_log_density(
                field,
                flat,
                t0,
                t1,
                divergence=divergence,
                n_probes=self.n_probes,
                probe=self.probe,
                generator=self.generator,
                dtype=dtype,
                **solver,
            )
        self.last_nfe = nfe
        return out.to(x.dtype).reshape(x.shape), (-dlogp).to(x.dtype)

    def _regularized(self, field, x0: torch.Tensor, t0: float, t1: float, divergence: str, solver: dict):
        """Integrate ``[x, delta_logp, kinetic, jacobian]`` (RNODE) with the same probes for trace and norm."""
        probes = sample_probes(x0, self.n_probes, self.probe, generator=self.generator)

        def aug(t: float, state):
            x = state[0]
            x = x if x.requires_grad else x.detach().requires_grad_(True)
            fx = field(t, x)
            zero = torch.zeros_like(state[1])
            if not fx.requires_grad:  # a field that depends on neither x nor parameters
                return fx, zero, fx.pow(2).sum(1), zero
            vjps = [torch.autograd.grad(fx, x, e, create_graph=True, allow_unused=True)[0] for e in probes]
            vjps = [torch.zeros_like(x) if v is None else v for v in vjps]
            frob = sum(v.pow(2).sum(1) for v in vjps) / len(vjps)
            if divergence == "exact":
                div = zero
                for i in range(x.shape[1]):
                    (row,) = torch.autograd.grad(fx[:, i].sum(), x, create_graph=True, allow_unused=True)
                    if row is not None:
                        div = div + row[:, i]
            else:
                div = sum((v * e).sum(1) for v, e in zip(vjps, probes)) / len(vjps)
            return fx, -div, fx.pow(2).sum(1), frob

        zeros = x0.new_zeros(x0.shape[0])
        return odeint(aug, (x0, zeros, zeros, zeros), t0, t1, dtype=x0.dtype, **solver)
