"""ODE integrators (fixed-step Euler/Heun/RK4, adaptive Dormand-Prince RK45) and the continuous
change of variables for continuous normalizing flows and probability-flow ODEs.

The state is a tensor or a tuple of tensors (e.g. ``(x, delta_logp)``), integrated in float64 by
default: log-densities of continuous flows are sums of many small increments, and float32 round-off
would dominate the 1e-6 accuracy that likelihood comparisons need. Time is passed to the field as a
Python float. Everything is plain autograd: with autograd enabled the result is differentiable
(discretise-then-optimise, no adjoint), under ``torch.no_grad()`` it is not. To count function
evaluations (NFE), wrap the field in a counter.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from deepgen.samplers._checks import check_positive, check_steps
from deepgen.samplers.divergence import PROBES, exact_divergence, hutchinson_divergence, sample_probes

State = torch.Tensor | tuple[torch.Tensor, ...]
Tuple = tuple[torch.Tensor, ...]
Dynamics = Callable[[float, State], State]

# Butcher tableaus (c, a, b) of the explicit fixed-step methods and their orders.
_FIXED = {
    "euler": ([0.0], [[]], [1.0]),
    "heun": ([0.0, 1.0], [[], [1.0]], [0.5, 0.5]),
    "rk4": ([0.0, 0.5, 0.5, 1.0], [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], [1 / 6, 1 / 3, 1 / 3, 1 / 6]),
}
ORDERS = {"euler": 1, "heun": 2, "rk4": 4, "rk45": 5}

# Dormand & Prince (1980), "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math. 6(1).
_DP_C = [0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0]
_DP_A = [
    [],
    [1 / 5],
    [3 / 40, 9 / 40],
    [44 / 45, -56 / 15, 32 / 9],
    [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
    [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
    [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84],
]
_DP_B4 = [5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40]
_DP_E = [b5 - b4 for b5, b4 in zip(_DP_A[6] + [0.0], _DP_B4)]  # 5th minus embedded 4th order weights


def _comb(y: Tuple, h: float, ks: list[Tuple], coeffs: list[float]) -> Tuple:
    """``y + h * sum_i coeffs_i * ks_i`` for tuple states."""
    out = []
    for j, yj in enumerate(y):
        acc = yj
        for c, k in zip(coeffs, ks):
            if c != 0.0:
                acc = acc + (h * c) * k[j]
        out.append(acc)
    return tuple(out)


def _rk_step(f: Callable[[float, Tuple], Tuple], t: float, y: Tuple, h: float, tableau) -> Tuple:
    c, a, b = tableau
    ks: list[Tuple] = []
    for ci, ai in zip(c, a):
        ks.append(f(t + ci * h, _comb(y, h, ks, ai)))
    return _comb(y, h, ks, b)


def _rms(parts: list[torch.Tensor]) -> float:
    total = sum(float(p.detach().double().pow(2).sum()) for p in parts)
    count = sum(p.numel() for p in parts)
    return math.sqrt(total / max(count, 1))


def _dopri5(f, t0: float, t1: float, y: Tuple, rtol: float, atol: float, max_steps: int) -> Tuple:
    direction = 1.0 if t1 > t0 else -1.0
    span = abs(t1 - t0)
    k1 = f(t0, y)
    # Initial step size: Hairer, Norsett & Wanner, "Solving ODEs I", sec. II.4.
    scale = [atol + rtol * yj.detach().abs() for yj in y]
    d0 = _rms([yj.detach() / s for yj, s in zip(y, scale)])
    d1 = _rms([kj.detach() / s for kj, s in zip(k1, scale)])
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    h0 = min(h0, span)
    y_probe = _comb(y, direction * h0, [k1], [1.0])
    k_probe = f(t0 + direction * h0, y_probe)
    d2 = _rms([(kp.detach() - kj.detach()) / s for kp, kj, s in zip(k_probe, k1, scale)]) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1 / 5)
    h = min(100 * h0, h1, span)

    t, n = t0, 0
    while direction * (t1 - t) > 0:
        n += 1
        if n > max_steps:
            raise RuntimeError(
                f"rk45 took more than max_steps={max_steps} steps from t={t0} to t={t1} (stiff or "
                "non-smooth field?); raise max_steps or loosen rtol/atol"
            )
        h = min(h, direction * (t1 - t))
        hs = direction * h
        ks = [k1]
        for ci, ai in zip(_DP_C[1:], _DP_A[1:]):
            ks.append(f(t + ci * hs, _comb(y, hs, ks, ai)))
        y_new = _comb(y, hs, ks[:6], _DP_A[6])  # 5th-order solution; ks[6] = f(t + h, y_new) (FSAL)
        err = _comb(tuple(torch.zeros_like(yj) for yj in y), hs, ks, _DP_E)
        tol = [atol + rtol * torch.maximum(a.detach().abs(), b.detach().abs()) for a, b in zip(y, y_new)]
        norm = _rms([e.detach() / s for e, s in zip(err, tol)])
        if not math.isfinite(norm):
            raise RuntimeError(f"rk45: non-finite error estimate at t={t} (the field returned NaN or inf)")
        factor = 10.0 if norm == 0 else min(10.0, max(0.2, 0.9 * norm ** (-1 / 5)))
        if norm <= 1.0:
            t = t1 if h >= direction * (t1 - t) else t + hs
            y, k1 = y_new, ks[6]
            h = h * factor
        else:
            h = h * min(1.0, factor)
    return y


def odeint(
    f: Dynamics,
    x0: State,
    t0: float,
    t1: float,
    *,
    method: str = "rk4",
    steps: int | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dtype: torch.dtype | None = torch.float64,
    max_steps: int = 10_000,
) -> State:
    """Integrate ``dx/dt = f(t, x)`` from ``t0`` to ``t1`` (either direction) and return ``x(t1)``.

    Methods: ``"euler"`` (order 1), ``"heun"`` (explicit trapezoid, order 2), ``"rk4"`` (classic
    Runge-Kutta, order 4), each with ``steps`` equal steps; ``"rk45"`` is adaptive Dormand-Prince
    5(4) (Dormand & Prince, 1980) with local error control ``rms(err / (atol + rtol |x|)) <= 1``,
    which is what continuous flows use (Chen et al., 2018, arXiv:1806.07366).

    Args:
        f: ``f(t, x)`` with ``t`` a Python float and ``x`` of the state's structure and shapes; it
            receives the state in ``dtype`` and its output is cast to it (a float32 network can be
            wrapped as ``lambda t, x: net(t, x.float())``).
        x0: initial state, a tensor (B, ...) or a tuple of tensors.
        t0, t1: start and end times; ``t1 < t0`` integrates backwards.
        method: one of ``"euler"``, ``"heun"``, ``"rk4"``, ``"rk45"``.
        steps: number of steps for the fixed-step methods (required there, not accepted by rk45).
        rtol, atol: rk45 tolerances.
        dtype: the state's floating dtype during integration (None keeps x0's).
        max_steps: rk45 gives up with a RuntimeError after this many (accepted or rejected) steps.

    Returns:
        ``x(t1)`` with the structure of ``x0``, in ``dtype``.

    Example::

        A = torch.tensor([[0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)  # rotation
        x1 = odeint(lambda t, x: x @ A.T, torch.randn(8, 2), 0.0, math.pi, method="rk45")  # ~ -x0
    """
    if method not in ORDERS:
        raise ValueError(f"method must be one of {tuple(ORDERS)}, got {method!r}")
    if method == "rk45":
        if steps is not None:
            raise ValueError("rk45 is adaptive and chooses its own steps; pass steps=None (or a fixed-step method)")
        rtol, atol = check_positive("rtol", rtol), check_positive("atol", atol)
        check_steps("max_steps", max_steps)
    elif steps is None:
        raise ValueError(f"method {method!r} is fixed-step: pass steps (an integer >= 1)")
    else:
        check_steps("steps", steps)
    t0, t1 = float(t0), float(t1)
    if not (math.isfinite(t0) and math.isfinite(t1)):
        raise ValueError(f"t0 and t1 must be finite, got {t0}, {t1}")
    single = isinstance(x0, torch.Tensor)
    y0 = (x0,) if single else tuple(x0)
    if not y0 or not all(isinstance(y, torch.Tensor) and y.is_floating_point() for y in y0):
        raise ValueError("x0 must be a floating tensor or a non-empty tuple of floating tensors")
    if dtype is not None:
        y0 = tuple(y.to(dtype) for y in y0)

    def ft(t: float, y: Tuple) -> Tuple:
        out = f(t, y[0] if single else y)
        out = (out,) if single else tuple(out)
        if len(out) != len(y) or any(o.shape != yj.shape for o, yj in zip(out, y)):
            raise ValueError(
                f"f returned shapes {[tuple(o.shape) for o in out]}, expected the state's {[tuple(v.shape) for v in y]}"
            )
        return tuple(o.to(yj.dtype) for o, yj in zip(out, y))

    if t1 == t0:
        y = y0
    elif method == "rk45":
        y = _dopri5(ft, t0, t1, y0, rtol, atol, max_steps)
    else:
        h = (t1 - t0) / steps
        y = y0
        for i in range(steps):
            y = _rk_step(ft, t0 + i * h, y, h, _FIXED[method])
    return y[0] if single else y


def odeint_log_density(
    f: Callable[[float, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    t0: float,
    t1: float,
    *,
    divergence: str = "exact",
    n_probes: int = 1,
    probe: str = "rademacher",
    generator: torch.Generator | None = None,
    method: str = "rk4",
    steps: int | None = None,
    rtol: float = 1e-6,
    atol: float = 1e-8,
    dtype: torch.dtype | None = torch.float64,
    max_steps: int = 10_000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Continuous change of variables: integrate ``[x, delta_logp]`` with ``d logp / dt = -div f(t, x)``.

    Instantaneous change of variables (Chen et al., 2018, arXiv:1806.07366), as used by FFJORD
    (Grathwohl et al., 2019, arXiv:1810.01367) and probability-flow ODEs (Song et al., 2021,
    arXiv:2011.13456): for x(t) solving ``dx/dt = f(t, x)``,

        log p_{t1}(x(t1)) = log p_{t0}(x(t0)) + delta_logp,   delta_logp = -int_{t0}^{t1} div f dt.

    ``divergence="exact"`` sums the autograd Jacobian diagonal (D backward passes per evaluation, for
    low dimensions); ``"hutchinson"`` uses ``n_probes`` Rademacher or Gaussian probes drawn once from
    ``generator`` and held fixed over the solve, so the estimated dynamics are a smooth ODE that an
    adaptive solver can integrate and ``delta_logp`` is an unbiased estimate. Works under an outer
    ``torch.no_grad()`` (gradients are enabled locally; outputs detached); with autograd enabled
    the outputs are differentiable, for training continuous flows by maximum likelihood.

    Args:
        f: the velocity field ``f(t, x) -> (B, ...)``; batch elements must be independent.
        x0: points at time ``t0``, (B, ...).
        t0, t1: integration interval; e.g. data-to-noise for density evaluation, reverse to sample.
        divergence: ``"exact"`` or ``"hutchinson"``.
        n_probes, probe, generator: the Hutchinson probes (see :func:`sample_probes`).
        method, steps, rtol, atol, dtype, max_steps: as in :func:`odeint`.

    Returns:
        ``(x_t1, delta_logp)`` with shapes (B, ...) and (B,), in ``dtype``.

    Example::

        # density of a CNF: push data x to the base at t=1, where log p_1 = standard normal
        z, dlogp = odeint_log_density(field, x, 0.0, 1.0, method="rk45")
        log_px = normal_log_prob(z) - dlogp
    """
    if divergence not in ("exact", "hutchinson"):
        raise ValueError(f"divergence must be 'exact' or 'hutchinson', got {divergence!r}")
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    if not isinstance(x0, torch.Tensor) or x0.dim() < 1 or not x0.is_floating_point():
        raise ValueError("x0 must be a floating tensor of shape (B, ...)")
    x = x0.to(dtype) if dtype is not None else x0
    probes = sample_probes(x, n_probes, probe, generator=generator) if divergence == "hutchinson" else None
    create = torch.is_grad_enabled()

    def aug(t: float, state: Tuple) -> Tuple:
        def field(z: torch.Tensor) -> torch.Tensor:
            return f(t, z).to(z.dtype)

        if probes is None:
            fx, div = exact_divergence(field, state[0], create_graph=create)
        else:
            fx, div = hutchinson_divergence(field, state[0], probes, create_graph=create)
        return fx, -div.to(state[1].dtype)

    logp0 = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    x1, dlogp = odeint(
        aug,
        (x, logp0),
        t0,
        t1,
        method=method,
        steps=steps,
        rtol=rtol,
        atol=atol,
        dtype=dtype,
        max_steps=max_steps,
    )
    return x1, dlogp
