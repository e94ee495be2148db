"""Device-dependent pieces of the engine: forked RNGs, bf16 autocast, ``torch.compile``.

Each helper answers "does this apply here?" with a one-line :class:`~deepgen.errors.ConfigError`
rather than a traceback from deep inside torch, because the answer depends on the machine (bf16
support of the GPU, a working C++ compiler for inductor), not on the user's code.
"""

from __future__ import annotations

import contextlib

import torch

from deepgen.errors import ConfigError, shorten

#: Backend handed to ``torch.compile``; tests set "eager" (tracing only, no C++ compiler, seconds
#: instead of the ~20 s inductor needs for even a tiny model on 2 CPU cores).
COMPILE_BACKEND = "inductor"


def fork_rng(device: torch.device):
    """Fork the CPU RNG, and the CUDA RNG of ``device`` when it is a GPU.

    Evaluation, plots and callbacks run inside it, so doing them (or not) never changes training:
    both generators training draws from are restored afterwards.
    """
    devices = [device] if device.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse bf16 where autocast cannot run it (an older GPU); CPU autocast supports bf16."""
    if precision == "fp32":
        return
    if precision != "bf16":
        raise ConfigError(f"unknown precision {precision!r}; use fp32 or bf16")
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name(device)
        raise ConfigError(f"--precision bf16: {name} does not support bfloat16; train with --precision fp32")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--precision bf16 is supported on cpu and cuda, not {device.type}")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions and matrix products in oneDNN's fast kernels
    (AVX-512 with BF16, or AMX). Without them (e.g. an AVX2-only CPU) PyTorch's CPU autocast still
    computes in bfloat16, through slow fallback kernels: a bf16 PixelCNN or RealNVP training step
    measured 5.7 and 9.7 times *slower* than fp32 on an AVX2-only EPYC (docs/benchmarks.md 11.1)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN: no fast bf16 either
        return False


def precision_warning(precision: str, device: torch.device) -> str | None:
    """A warning for a precision that works but is slow on this device, else None."""
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        capability = torch.backends.cpu.get_cpu_capability()
        return (
            f"--precision bf16: this CPU has no native bfloat16 (torch reports {capability} "
            "and no oneDNN bf16 support), so bf16 convolutions and matrix products run in slow fallback "
            "kernels, often several times slower than fp32; --precision fp32 is likely faster here"
        )
    return None


def autocast(precision: str, device: torch.device):
    """Context for the forward pass: bf16 autocast, or nothing at all for fp32 (zero cost)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def no_autocast(precision: str, device: torch.device):
    """Backward and optimiser steps run outside autocast (PyTorch's advice: autocast the forward only)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def compile_forward(module: torch.nn.Module):
    """``torch.compile(module)`` with :data:`COMPILE_BACKEND`; compilation itself happens on first call."""
    try:
        return torch.compile(module, backend=COMPILE_BACKEND)
    except RuntimeError as e:  # e.g. "Dynamo is not supported on Python 3.x"
        raise ConfigError(f"--compile is not available here ({first_line(e)}); train without --compile") from None


def compile_failure(e: BaseException) -> ConfigError | None:
    """A ConfigError for an exception raised while compiling (None: the model's own error)."""
    try:
        from torch._dynamo.exc import TorchDynamoException
    except ImportError:  # pragma: no cover - very old or stripped torch
        return None
    if isinstance(e, TorchDynamoException):
        inner = getattr(e, "inner_exception", None)  # BackendCompilerFailed's first line names only the backend
        what = f"{type(inner).__name__}: {first_line(inner)}" if inner is not None else first_line(e)
        return ConfigError(f"--compile failed on this machine ({shorten(what)}); train without --compile")
    return None


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
