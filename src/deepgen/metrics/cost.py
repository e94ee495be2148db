"""Cost metrics: training throughput and peak memory (parameters: ``GenerativeModel.num_parameters``;
sampling throughput: :func:`deepgen.evaluate.draw_samples`).

Peak memory on CPU is the process's resident-set high-water mark (Linux ``VmHWM``), reset before
each measurement through ``/proc/self/clear_refs`` where the kernel allows it; it therefore includes
the interpreter, torch and the dataset. On CUDA it is ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import torch


def training_throughput(metrics_path: str | Path) -> float | None:
    """Median examples/s over the logged training windows, skipping the first (warm-up) window."""
    spread = training_throughput_spread(metrics_path)
    return None if spread is None else spread["median"]


def training_throughput_spread(metrics_path: str | Path) -> dict | None:
    """Examples/s over the logged training windows after the first (warm-up) one: median, quartiles,
    min and max, and the number of windows (a busy machine shows up as a wide spread)."""
    rates = []
    p = Path(metrics_path)
    if not p.exists():
        return None
    for line in p.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if r.get("split") == "train" and "examples_per_s" in r:
            rates.append(r["examples_per_s"])
    if len(rates) > 1:
        rates = rates[1:]
    if not rates:
        return None
    return {"median": statistics.median(rates), **spread(rates)}


def spread(values: list[float]) -> dict:
    """Quartiles, min, max and count of timing samples (quartiles by linear interpolation)."""
    v = sorted(values)
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return {"q25": q[0], "q75": q[2], "min": v[0], "max": v[-1], "n": len(v)}


def load_average() -> float | None:
    """The 1-minute load average (None where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def other_runnable(samples: int = 5, interval: float = 0.02) -> float | None:
    """How many other processes want a CPU right now: the median, over a few reads, of the kernel's
    count of runnable tasks (``/proc/loadavg``) minus this one. Unlike the 1-minute load average it
    does not remember our own work of the last minute. None where /proc is not available."""
    import time

    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as fh:
                counts.append(int(fh.read().split()[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            return None
        if i + 1 < samples:
            time.sleep(interval)
    return statistics.median(counts)


def busy_machine_note(load: float | None) -> str | None:
    """A sentence for reports when other processes competed for the cores during timing.

    The 1-minute load average counts our own busy threads too (a 2-thread run on 2 cores reads
    about 2.0-2.2 alone), so only a load more than half a core above the core count is flagged.
    """
    cores = os.cpu_count() or 1
    if load is None or load <= cores + 0.5:
        return None
    return f"load average {load:.1f} on {cores} cores while timing: other processes competed, speeds are low"


def reset_peak_memory(device: torch.device | str = "cpu") -> bool:
    """Reset the peak-memory counter; returns False when the platform does not allow it."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_memory_mb(device: torch.device | str = "cpu") -> float | None:
    """Peak memory in MiB since the last reset (CPU: whole-process resident set)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except (ImportError, OSError):  # pragma: no cover
        return None
