"""Divergence of a vector field, ``div f(x) = tr(df/dx)``: exact trace and Hutchinson's estimator.

Continuous normalizing flows and probability-flow ODEs change log-density at the rate ``-div f``
(Chen et al., 2018, arXiv:1806.07366). The exact trace costs D backward passes, fine in low
dimension; Hutchinson's estimator ``E[e^T (df/dx) e]`` with ``E[e e^T] = I`` costs one vector-Jacobian
product per probe (Hutchinson, 1989; used by FFJORD, Grathwohl et al., 2019, arXiv:1810.01367).

Both functions return ``(f(x), div)`` so an ODE step evaluates the field once. Autograd is enabled
locally, so they work under ``torch.no_grad()`` (outputs detached there); with autograd enabled
the outputs stay differentiable (``create_graph``), which training a continuous flow needs.
The field must treat batch elements independently (no batch statistics).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from deepgen.samplers._checks import as_grad_leaf, check_like, check_steps, local_grad

Field = Callable[[torch.Tensor], torch.Tensor]

PROBES = ("rademacher", "gaussian")


def sample_probes(
    x: torch.Tensor, n_probes: int = 1, kind: str = "rademacher", *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Hutchinson probe vectors e with ``E[e e^T] = I``: shape (n_probes, B, ...), dtype and device of ``x``.

    ``"rademacher"`` (entries +-1, the lower-variance choice) or ``"gaussian"`` (standard normal).
    """
    check_steps("n_probes", n_probes)
    shape = (n_probes, *x.shape)
    if kind == "rademacher":
        bits = torch.randint(0, 2, shape, generator=generator, device=x.device)
        return (2 * bits - 1).to(x.dtype)
    if kind == "gaussian":
        return torch.randn(shape, generator=generator, dtype=x.dtype, device=x.device)
    raise ValueError(f"probe must be one of {PROBES}, got {kind!r}")


def _input(x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    # Keep x in the graph when the caller differentiates through it (x depends on parameters via
    # earlier ODE steps); otherwise a fresh leaf suffices.
    return x if (create_graph and x.requires_grad) else as_grad_leaf(x)


def exact_divergence(
    fn: Field, x: torch.Tensor, *, create_graph: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fn(x), tr(d fn / dx))`` with the trace summed from D autograd Jacobian rows; for low dimension D.

    Args:
        fn: the field, ``fn(x)`` with the shape of ``x`` = (B, ...), D = prod(...).
        x: points, (B, ...).
        create_graph: keep the outputs differentiable; default ``torch.is_grad_enabled()``.

    Returns:
        ``(fx, div)`` with shapes (B, ...) and (B,).

    Example::

        A = torch.tensor([[0.0, 1.0], [-1.0, -0.5]])
        fx, div = exact_divergence(lambda x: x @ A.T, torch.randn(4, 2))  # div == -0.5
    """
    create = torch.is_grad_enabled() if create_graph is None else create_graph
    with local_grad():
        xin = _input(x, create)
        fx = check_like("the vector field", fn(xin), xin)
        div = torch.zeros(x.shape[0], dtype=fx.dtype, device=fx.device)
        if fx.requires_grad:
            flat = fx.flatten(1)
            for i in range(flat.shape[1]):
                (row,) = torch.autograd.grad(
                    flat[:, i].sum(), xin, create_graph=create, retain_graph=True, allow_unused=True
                )
                if row is not None:
                    div = div + row.flatten(1)[:, i]
    if not create:
        fx, div = fx.detach(), div.detach()
    return fx, div


def hutchinson_divergence(
    fn: Field, x: torch.Tensor, probes: torch.Tensor, *, create_graph: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(fn(x), mean_k e_k^T (d fn / dx) e_k)``: Hutchinson's unbiased estimate of the divergence.

    Args:
        fn: the field, ``fn(x)`` with the shape of ``x`` = (B, ...).
        x: points, (B, ...).
        probes: (K, B, ...) vectors with ``E[e e^T] = I`` (see :func:`sample_probes`); the estimate
            averages the K probes, one vector-Jacobian product each.
        create_graph: keep the outputs differentiable; default ``torch.is_grad_enabled()``.

    Returns:
        ``(fx, div_estimate)`` with shapes (B, ...) and (B,).

    Example::

        e = sample_probes(x, 8, generator=torch.Generator().manual_seed(0))
        fx, div = hutchinson_divergence(net, x, e)
    """
    if probes.dim() != x.dim() + 1 or probes.shape[1:] != x.shape:
        raise ValueError(f"probes must have shape (K, *x.shape) = (K, {tuple(x.shape)}), got {tuple(probes.shape)}")
    create = torch.is_grad_enabled() if create_graph is None else create_graph
    with local_grad():
        xin = _input(x, create)
        fx = check_like("the vector field", fn(xin), xin)
        div = torch.zeros(x.shape[0], dtype=fx.dtype, device=fx.device)
        if fx.requires_grad:
            for e in probes:
                e = e.to(fx.dtype)
                (vjp,) = torch.autograd.grad(fx, xin, e, create_graph=create, retain_graph=True, allow_unused=True)
                if vjp is not None:
                    div = div + (vjp * e).flatten(1).sum(1)
        div = div / probes.shape[0]
    if not create:
        fx, div = fx.detach(), div.detach()
    return fx, div
