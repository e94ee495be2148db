"""Check that a bijector keeps the contract: shapes, round trips, and log-dets equal to autograd's.

:func:`check_bijector` is what ``tests/bijectors/test_bijector_contract.py`` runs on every reference
bijector, and what a user writing a new layer can run on theirs. Use float64 (``b.double()`` and a
float64 batch): the Jacobian comparison is then accurate to about 1e-10, far below the errors that
a wrong log-det makes.

>>> from deepgen.bijectors import Logit
>>> check_bijector(Logit(0.05).double(), torch.rand(4, 3, dtype=torch.float64))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from deepgen.bijectors.base import Bijector, NoInverseError


@dataclass
class Case:
    """One bijector test case: how to build it and where its inputs live (see ``tests/bijectors``).

    ``factory()`` builds the bijector (it is converted to float64); ``shape`` is one batch's shape;
    ``domain``/``codomain`` say where inputs/latents are drawn: ``"real"`` (Gaussian), ``"unit"``
    ((0, 1)) or ``"symmetric"`` ((-1, 1)); ``context=N`` passes ``N`` labels as a (B,) context;
    ``invertible=False`` expects :class:`NoInverseError`; ``atol`` loosens the comparisons (numerical
    inverses, ODE solves).
    """

    name: str
    factory: Callable[[], Bijector]
    shape: tuple[int, ...]
    domain: str = "real"
    codomain: str = "real"
    context: int | None = None  # number of classes of a (B,) label context
    invertible: bool = True
    atol: float = 1e-7


def _close(name: str, got: torch.Tensor, want: torch.Tensor, atol: float, rtol: float) -> None:
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if not torch.allclose(got, want, atol=atol, rtol=rtol):
        err = (got - want).abs().max().item()
        raise AssertionError(f"{name}: max abs error {err:.3g} (atol {atol:g}, rtol {rtol:g})")


def _slice(context, i: int):
    return None if context is None else context[i : i + 1]


def _check_output(name: str, inp: torch.Tensor, out: torch.Tensor, log_det: torch.Tensor) -> None:
    if out.shape[0] != inp.shape[0] or out[0].numel() != inp[0].numel():
        raise AssertionError(f"{name}: maps {tuple(inp.shape)} to {tuple(out.shape)}; it must keep B and numel")
    if log_det.shape != (inp.shape[0],) or log_det.dtype != inp.dtype:
        raise AssertionError(
            f"{name}: log-det must be ({inp.shape[0]},) {inp.dtype}, got {tuple(log_det.shape)} {log_det.dtype}"
        )
    if not (torch.isfinite(out).all() and torch.isfinite(log_det).all()):
        raise AssertionError(f"{name}: non-finite output or log-det")


def _jacobian_log_dets(fn, inp: torch.Tensor, context) -> torch.Tensor:
    """(B,) log|det J| of ``fn`` at each example, from the autograd Jacobian of one example at a time."""
    out = []
    for i in range(inp.shape[0]):
        ctx = _slice(context, i)

        def flat(v, i=i, ctx=ctx):
            return fn(v.reshape(1, *inp.shape[1:]), ctx)[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(flat, inp[i].reshape(-1))
        sign, logabsdet = torch.linalg.slogdet(jac)
        if sign == 0:
            raise AssertionError(f"singular Jacobian at example {i}")
        out.append(logabsdet)
    return torch.stack(out)


def _differentiable_in_input(fn, inp: torch.Tensor, context) -> bool:
    """Whether autograd reaches ``inp`` through ``fn`` (a numerical inverse run without gradients does
    not, even when later layers make its output require grad through their parameters)."""
    v = inp.detach().requires_grad_()
    out = fn(v, context)[0]
    if not out.requires_grad:
        return False
    grad = torch.autograd.grad(out.sum(), v, allow_unused=True)[0]
    return grad is not None and bool(grad.abs().sum() > 0)


def check_bijector(
    b: Bijector,
    x: torch.Tensor,
    context: torch.Tensor | None = None,
    *,
    z: torch.Tensor | None = None,
    atol: float = 1e-7,
    rtol: float = 1e-6,
    invertible: bool = True,
) -> None:
    """Raise AssertionError (saying what broke) unless ``b`` keeps the bijector contract at ``x``.

    Checks, for a batch ``x`` (B, *shape) of points in ``b``'s data domain:

    * ``forward`` returns ``(z, log_det)``, log-det ``(B,)`` in ``x``'s dtype, finite, same numel;
    * examples are independent: a batch gives the same outputs as one example at a time;
    * ``log_det`` equals ``log|det dz/dx|`` of the autograd Jacobian (``torch.linalg.slogdet``);
    * if ``invertible``: ``inverse(forward(x)) == x`` with log-dets summing to 0, and at latents
      ``z`` (default: ``forward(x)``) ``forward(inverse(z)) == z`` with the inverse log-det equal to
      minus autograd's forward log-det at ``inverse(z)`` and, where the inverse is differentiable
      (not a numerical one run without gradients), to autograd's log-det of the inverse.
      ``invertible=False`` expects :class:`NoInverseError` from ``inverse``.

    ``context`` (B, ...) is passed to every call, sliced per example. The module is run once on the
    whole batch in its current mode (so data-dependent initialisation happens), then in eval mode.
    """
    name = type(b).__name__
    was_training = b.training
    out, log_det = b(x, context)
    b.eval()
    try:
        _check_output(f"{name}.forward", x, out, log_det)
        for i in range(x.shape[0]):
            zi, ldi = b(x[i : i + 1], _slice(context, i))
            _close(f"{name}.forward of example {i} alone vs in the batch", zi[0], out[i], atol, rtol)
            _close(f"{name}.forward log-det of example {i} alone vs in the batch", ldi[0], log_det[i], atol, rtol)
        _close(f"{name}.forward log-det vs autograd", log_det, _jacobian_log_dets(b, x, context), atol, rtol)
        try:
            back, inv_log_det = b.inverse(out, context)
        except NoInverseError:
            if invertible:
                raise
            return
        if not invertible:
            raise AssertionError(f"{name}: expected NoInverseError from inverse, but it returned")
        _check_output(f"{name}.inverse", out, back, inv_log_det)
        _close(f"{name}: inverse(forward(x)) vs x", back, x, atol, rtol)
        zero = torch.zeros_like(log_det)
        _close(f"{name}: inverse log-det + forward log-det", inv_log_det + log_det, zero, atol, rtol)
        z = out.detach() if z is None else z
        xz, inv_ld = b.inverse(z, context)
        _check_output(f"{name}.inverse", z, xz, inv_ld)
        zz, ld = b(xz, context)
        _close(f"{name}: forward(inverse(z)) vs z", zz, z, atol, rtol)
        _close(f"{name}: forward log-det at inverse(z) + inverse log-det", ld + inv_ld, zero, atol, rtol)
        # valid for numerical inverses too: log|det dx/dz| = -log|det dz/dx| at x = inverse(z)
        fwd_at_xz = _jacobian_log_dets(b, xz.detach(), context)
        _close(f"{name}.inverse log-det vs autograd of forward at inverse(z)", inv_ld, -fwd_at_xz, atol, rtol)
        if _differentiable_in_input(b.inverse, z, context):  # not a no-grad numerical inverse
            inv_jac = _jacobian_log_dets(b.inverse, z, context)
            _close(f"{name}.inverse log-det vs autograd", inv_ld, inv_jac, atol, rtol)
    finally:
        b.train(was_training)
