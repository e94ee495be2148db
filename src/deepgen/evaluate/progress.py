"""Progress of an evaluation, one phase at a time (likelihood, sampling, features, distances).

Each phase prints a tqdm line to stderr with its count, rate and an estimate of the time left, and a
closing line with what it did and how long it took, so a long ``deepgen eval`` is never silent.
``Progress(enabled=False)`` (tests, ``--quiet``) prints nothing but still records the timings.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager


class Progress:
    """Phase-by-phase progress with timings (``self.timings``: seconds per phase)."""

    def __init__(self, enabled: bool = True, prefix: str = ""):
        self.enabled = enabled
        self.prefix = prefix
        self.timings: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str, total: int | None = None, unit: str = "it"):
        """Context: yields ``update(done, total)``; on exit records and prints the phase's time."""
        bar = None
        if self.enabled and total:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=total,
                desc=f"{self.prefix}{name}",
                unit=unit,
                file=sys.stderr,
                leave=False,
                mininterval=0.5,
                dynamic_ncols=True,
            )
        state = {"done": 0}

        def update(done: int, total_: int | None = None) -> None:
            if bar is not None:
                if total_ is not None and total_ != bar.total:  # the caller settled on a budget
                    bar.total = total_
                    bar.refresh()
                bar.update(done - state["done"])
            state["done"] = done

        t0 = time.perf_counter()
        try:
            yield update
        finally:
            dt = time.perf_counter() - t0
            self.timings[name] = self.timings.get(name, 0.0) + dt
            if bar is not None:
                bar.close()
            if self.enabled:
                what = f"{state['done']:,} {unit}, " if state["done"] else ""
                print(f"{self.prefix}{name}: {what}{dt:.1f} s", file=sys.stderr)
