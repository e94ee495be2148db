"""Shared helpers for the samplers: argument validation, seeded noise and local gradient mode."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch


def check_steps(name: str, value: int) -> int:
    """Return ``value`` if it is an integer >= 1, else raise a ValueError naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_positive(name: str, value: float) -> float:
    """Return ``float(value)`` if it is a finite number > 0, else raise a ValueError naming the argument."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_state(name: str, x: torch.Tensor) -> torch.Tensor:
    """A sampler state must be a floating tensor of shape (B, ...)."""
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise ValueError(f"{name} must be a tensor of shape (B, ...), got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def check_like(what: str, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``out`` (a score or drift) must have the shape of the state ``x``."""
    if out.shape != x.shape:
        raise ValueError(f"{what} returned shape {tuple(out.shape)}, expected the state's shape {tuple(x.shape)}")
    return out


def check_batch(what: str, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``out`` (a log-density) must have shape (B,) for a state of shape (B, ...)."""
    if out.shape != x.shape[:1]:
        raise ValueError(f"{what} returned shape {tuple(out.shape)}, expected (B,) = ({x.shape[0]},)")
    return out


def randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise with the shape, dtype and device of ``x``, drawn from ``generator``."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def rand_batch(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One float64 uniform per chain, for Metropolis-Hastings tests (float64 so log(u) never rounds to 0)."""
    return torch.rand(x.shape[0], generator=generator, dtype=torch.float64, device=x.device)


@contextlib.contextmanager
def local_grad() -> Iterator[None]:
    """Enable autograd inside, even under an outer ``torch.no_grad()`` or ``torch.inference_mode()``.

    Samplers that need a gradient of the model (Langevin from a log-density, MALA, ODE divergences) are
    called from sampling code that disables autograd; the gradient is a means, not a result, so it is
    computed locally and the outputs are detached.
    """
    with torch.inference_mode(False), torch.enable_grad():
        yield


def as_grad_leaf(x: torch.Tensor) -> torch.Tensor:
    """A fresh leaf copy of ``x`` that requires grad; cloned so inference-mode tensors can enter autograd."""
    if torch.is_inference(x):
        x = x.clone()
    return x.detach().requires_grad_(True)
