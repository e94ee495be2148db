"""One distributed path: the same entry point runs under ``python`` and ``torchrun``.

Under ``torchrun --nproc_per_node=K`` the environment holds ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``;
:func:`setup` then joins the process group (gloo on CPU, nccl on GPU). Rank 0 logs and writes
checkpoints. :func:`teardown` deletes the DDP wrapper and destroys the process group before the
interpreter exits, which removes an intermittent SIGABRT at exit seen with gloo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from deepgen.errors import ConfigError


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` (GPU ``local_rank`` when CUDA is available, else CPU), ``cpu``, ``cuda``, ``cuda:N``.

    ``cuda`` without an index means this process's local rank (one GPU per process under torchrun).
    A device this machine does not have is a one-line :class:`ConfigError`, not a CUDA traceback.
    """
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise ConfigError(f"device {name!r} is not supported; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        why = "this torch was built without CUDA" if torch.version.cuda is None else "no GPU is visible"
        raise ConfigError(f"device {name!r}: CUDA is not available ({why}); use --device cpu or auto")
    index = local_rank if dev.index is None else dev.index
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(f"device {name!r}: this machine has {count} GPU(s) (cuda:0..cuda:{count - 1})")
    return torch.device(f"cuda:{index}")


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; otherwise a single-process DistInfo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        dev = pick_device(device)
        if dev.type == "cuda":  # tensors a model creates with device="cuda" land on the chosen GPU
            torch.cuda.set_device(dev)
        return DistInfo(device=dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local, dev)


def wrap_ddp(model: torch.nn.Module, info: DistInfo, ignore: tuple[str, ...] = ()):
    """``DistributedDataParallel(model)`` with the model's declared options.

    ``ignore`` names per-rank buffers, which DDP must neither broadcast from rank 0 when it wraps
    the model (that would overwrite every other rank's restored state) nor before each forward.
    ``model.ddp_broadcast_buffers`` (the other buffers, e.g. batch-norm statistics, synced from
    rank 0 before each forward) and ``ddp_find_unused_parameters`` (a loss that may skip a
    parameter on some ranks; costs a graph walk per step) are read from the model's class.
    """
    import inspect

    from torch.nn.parallel import DistributedDataParallel as DDP

    if ignore:  # torch's (private, long-standing) hook for exactly this
        DDP._set_params_and_buffers_to_ignore_for_model(model, list(ignore))
    sync = getattr(type(model), "ddp_broadcast_buffers", True)
    # torch 2.13 renamed broadcast_buffers (now deprecated, with a warning) to forward_sync_buffers
    key = "forward_sync_buffers" if "forward_sync_buffers" in inspect.signature(DDP).parameters else "broadcast_buffers"
    return DDP(
        model,
        device_ids=[info.device.index] if info.device.type == "cuda" else None,
        find_unused_parameters=getattr(type(model), "ddp_find_unused_parameters", False),
        **{key: sync},
    )


def teardown(info: DistInfo, barrier: bool = True) -> None:
    """Leave the process group together: without the barrier, rank 0 (which hosts the rendezvous
    store) can tear it down while another rank is still leaving, and that rank aborts with
    "terminate called without an active exception" (seen about once in six loaded test runs).

    ``barrier=False`` when this rank leaves on an error: the other ranks are then waiting in a
    collective of the training loop, not at the barrier, so waiting for them would hang this rank
    for ever; leaving at once lets torchrun see the failure and stop the others."""
    if info.enabled and dist.is_initialized():
        try:
            if barrier:
                dist.barrier()
        finally:
            dist.destroy_process_group()


def all_reduce_grads(params: list[torch.nn.Parameter], world_size: int) -> None:
    """Average gradients over ranks in one flattened all-reduce (for models trained without DDP).

    Every rank sends a buffer of the same layout: all parameters in order, zeros where a rank has
    no gradient (a parameter its batch did not reach), plus one has-gradient flag per parameter.
    Skipping missing gradients instead would make the ranks' buffers differ in length (a hang, or
    gradients added to the wrong parameters). After the sum, a parameter some rank had a gradient
    for gets the average over all ranks on every rank (the missing ones counted as zero, which is
    the gradient of the global mean loss); one no rank touched keeps ``grad = None`` everywhere,
    so optimisers skip it alike.
    """
    if not params:
        return
    ref = params[0]
    flags = torch.tensor([p.grad is not None for p in params], dtype=ref.dtype, device=ref.device)
    parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
    flat = torch.cat([*parts, flags])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for p, had in zip(params, flat[-len(params) :].tolist()):
        n = p.numel()
        if had > 0:
            avg = flat[offset : offset + n].view_as(p)
            if p.grad is None:
                p.grad = avg.to(p.dtype, copy=True)
            else:
                p.grad.copy_(avg)
        offset += n


def broadcast_module(module: torch.nn.Module, skip: tuple[str, ...] = ()) -> None:
    """Make every rank hold rank 0's parameters and buffers, except the per-rank buffers in ``skip``."""
    named = list(module.named_parameters()) + list(module.named_buffers())
    for name, t in named:
        if name not in skip:
            dist.broadcast(t.data, src=0)


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any rank (one tiny all-reduce)."""
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def max_over_ranks(value: float, info: DistInfo) -> float:
    """The largest of the ranks' ``value`` (one tiny all-reduce); ``value`` itself without DDP."""
    if not info.enabled:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def all_gather_object(obj, info: DistInfo) -> list:
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return {k: v / info.world_size for k, v in zip(keys, t.cpu().tolist())}


def interrupt_on_sigterm():
    """Treat SIGTERM like Ctrl-C (SIGINT) in this process; returns the previous handler (None off the main thread).

    torchrun answers Ctrl-C (or its own SIGTERM, e.g. from a job scheduler) by sending that signal to
    every worker, then SIGKILL after its shutdown timeout. A worker dies silently on the default
    SIGTERM action; delegating to whatever SIGINT handler is current lets the trainer finish its
    step, write the checkpoint and exit with 130 like an interrupted single-process run.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        current = signal.getsignal(signal.SIGINT)
        if callable(current):
            current(signal.SIGINT, frame)
        else:  # SIG_IGN or SIG_DFL installed by someone else: behave as Python's default Ctrl-C
            raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)
