"""Many contrastive-divergence updates of an RBM in one call: the fused path behind ``--steps-per-call``.

An RBM update on small data is a handful of tiny matrix products (batch 10 on 8x8 digits: 10 x 64 x
64), so its cost is torch's per-operation dispatch and the Python around it, not arithmetic: about
20 operations of a few microseconds each, plus the training engine's per-step bookkeeping. This
kernel runs ``len(batches)`` updates in one call, with exactly the arithmetic and the random draws
of :meth:`RBM.train_step <deepgen.models.energy.rbm.RBM.train_step>` (the same draws from the same
global generator in the same order, the same momentum SGD), so a fused run and a step-by-step run
give the same weights up to float rounding (``tests/models/test_rbm_fused.py``).

:func:`cd_updates` is compiled with TorchScript when this torch has it, which removes the Python
interpreter from the loop (8x8 digits, batch 10, one thread: fused and scripted, a fit takes 0.90x
scikit-learn's time; run as plain Python, 1.33x; docs/benchmarks.md, section 15.1).
``torch.jit.script`` is deprecated (torch 2.13 warns), but ``torch.compile`` takes tens of seconds to
compile a loop that runs in a tenth of a second; when scripting is unavailable or fails, the same
function runs eagerly.

Unit kinds are passed as integers: 0 bernoulli, 1 spin, 2 gaussian (see :data:`UNIT_CODES`).
"""

from __future__ import annotations

import warnings

import torch

#: Unit kind name -> the integer the kernel takes.
UNIT_CODES = {"bernoulli": 0, "spin": 1, "gaussian": 2}


def _mean(kind: int, x: torch.Tensor) -> torch.Tensor:
    if kind == 0:
        return torch.sigmoid(x)
    if kind == 1:
        return torch.tanh(x)
    return x


def _sample(kind: int, x: torch.Tensor) -> torch.Tensor:
    # as rbm.unit_sample: uniform < p for binary units, N(x, 1) for Gaussian ones, global generator
    if kind == 2:
        return x + torch.randn_like(x)
    if kind == 1:
        u = (torch.rand_like(x) < torch.sigmoid(2 * x)).to(x.dtype)
        return 2 * u - 1
    return (torch.rand_like(x) < torch.sigmoid(x)).to(x.dtype)


def _log_partition_sum(kind: int, x: torch.Tensor) -> torch.Tensor:
    if kind == 0:
        return torch.nn.functional.softplus(x).sum()
    if kind == 1:
        return torch.logaddexp(x, -x).sum()
    return (0.5 * x * x).sum()  # the constant log(2 pi) / 2 cancels in the free-energy gap


def cd_updates(
    W: torch.Tensor,
    b: torch.Tensor,
    c: torch.Tensor,
    batches: list[torch.Tensor],
    chains: torch.Tensor,
    lrs: list[float],
    momentum: float,
    buffers: list[torch.Tensor],
    weight_decay: float,
    k: int,
    persistent: bool,
    visible: int,
    hidden: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """CD-k (or PCD-k) updates of ``W, b, c`` in place, one per visible batch in ``batches``.

    ``lrs``: the learning rate of each update. ``buffers``: the momentum buffers of W, b, c (updated
    in place; empty when ``momentum`` is 0). ``chains``: the persistent chains (PCD; ignored
    otherwise). Returns ``(chains, loss, gap)``: the chains after the last update, and the
    last update's monitors (reconstruction error per dimension and free-energy gap, at the weights
    before that update, as ``train_step`` reports them).
    """
    loss = torch.zeros(())
    gap = torch.zeros(())
    last = len(batches) - 1
    for i in range(len(batches)):
        v0 = batches[i]
        f0 = torch.addmm(c, v0, W)
        h0 = _mean(hidden, f0)
        v = chains if persistent else v0
        for j in range(k):
            hf = f0 if j == 0 and not persistent else torch.addmm(c, v, W)
            h = _sample(hidden, hf)
            v = _sample(visible, torch.addmm(b, h, W.t()))
        if persistent:
            chains = v
        fk = torch.addmm(c, v, W)
        hk = _mean(hidden, fk)
        n, m = v0.shape[0], v.shape[0]
        g_w = torch.addmm(v0.t() @ h0, v.t(), hk, beta=-1.0 / n, alpha=1.0 / m)
        if n == m:
            g_b, g_c = (v - v0).mean(0), (hk - h0).mean(0)
        else:
            g_b, g_c = v.mean(0) - v0.mean(0), hk.mean(0) - h0.mean(0)
        if i == last:
            gap = g_b @ b + _log_partition_sum(hidden, fk) / m - _log_partition_sum(hidden, f0) / n
            if visible == 2:
                gap = gap + 0.5 * (v0.square().sum() / n - v.square().sum() / m)
            loss = (v0 - _mean(visible, torch.addmm(b, h0, W.t()))).square().mean()
        if weight_decay != 0.0:
            g_w.add_(W, alpha=weight_decay)
        grads = [g_w, g_b, g_c]
        if momentum != 0.0:
            for buf, g in zip(buffers, grads):
                buf.mul_(momentum).add_(g)
            grads = buffers
        W.add_(grads[0], alpha=-lrs[i])
        b.add_(grads[1], alpha=-lrs[i])
        c.add_(grads[2], alpha=-lrs[i])
    return chains, loss, gap


_compiled = None


def kernel():
    """:func:`cd_updates`, compiled by TorchScript on first use when possible, else the eager function."""
    global _compiled
    if _compiled is None:
        _compiled = cd_updates
        script = getattr(torch.jit, "script", None)
        if script is not None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # its deprecation notice: see the module docstring
                    _compiled = script(cd_updates)
            except Exception:  # noqa: BLE001 (a torch without a working TorchScript: run it eagerly)
                _compiled = cd_updates
    return _compiled
