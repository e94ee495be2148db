"""Training batches on the training device.

The split's stored tensor (``split.storage``: uint8 level codes for discrete data, float32
otherwise) is moved to the device once; each batch is gathered there with indices that already
live on the device (:class:`EpochSampler` moves each epoch's permutation over once), and only
then decoded to float32 model space (``split.decode``). Holding MNIST as uint8 on a GPU takes a
quarter of the memory and a quarter of the host-to-device traffic of float32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from deepgen.data import Dataset
from deepgen.train.sampler import EpochSampler

#: Training sets whose decoded (float32) rows take at most this many bytes are decoded once, up front.
DECODE_ONCE_BYTES = 64 << 20


def storage_and_decoder(split) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor] | None]:
    """``(stored rows, decode)`` of a split; splits without a stored form give ``(x, None)``."""
    storage = getattr(split, "storage", None)
    decode = getattr(split, "decode", None)
    if storage is None or decode is None:  # data held as float32 model-space values already
        return split.x, None
    return storage, decode


class BatchSource:
    """Batch ``k`` of this rank: a pure function of (seed, k, rank), gathered on ``device``.

    ``peek(k)`` returns ``(x, y)`` with ``x`` (batch_size, *shape) float32 in model space (before the
    dataset's per-batch transform) and ``y`` (batch_size,) or None.
    """

    def __init__(self, data: Dataset, batch_size: int, seed: int, rank: int, world_size: int, device: torch.device):
        split = data.train
        storage, self.decode = storage_and_decoder(split)
        # A memory-mapped file stays where it is (on disk, paged in by the OS): batches are gathered on
        # the CPU and only they move to the device. Everything else moves to the device once.
        self.device = device
        home = torch.device("cpu") if getattr(split, "mapped", False) else device
        self.storage = storage if home.type == "cpu" and storage.device.type == "cpu" else storage.to(home)
        if self.decode is not None and home == device and self._decoded_bytes() <= DECODE_ONCE_BYTES:
            # Small data (toys, digits, MNIST in float32 is 188 MB and stays compact): decode every row
            # once, so a batch is one gather; decoding per batch cost as much as a tiny model's step.
            self.storage, self.decode = self.decode(self.storage), None
        self.y = None if split.y is None else split.y.to(home)
        self.sampler = EpochSampler.for_run(len(self.storage), batch_size, seed, rank, world_size, device=home)

    def _decoded_bytes(self) -> int:
        return self.storage.numel() * 4  # float32 model space

    def __len__(self) -> int:
        return len(self.storage)

    def peek(self, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self._gather(self.sampler.batch(k))

    def peek_many(self, k: int, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Batches ``k .. k + n - 1`` in one gather: ``x`` (n, batch_size, *shape), ``y`` (n, batch_size) or None."""
        x, y = self._gather(self.sampler.batches(k, n))
        return x.view(n, -1, *x.shape[1:]), None if y is None else y.view(n, -1)

    def _gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.storage.index_select(0, idx)
        y = None if self.y is None else self.y.index_select(0, idx)
        if x.device != self.device:  # a mapped file: move only the batch
            x = x.to(self.device, non_blocking=True)
            y = None if y is None else y.to(self.device, non_blocking=True)
        if self.decode is not None:
            x = self.decode(x)
        return x, y


def passes_y(info, model) -> bool:
    """Whether the model receives the split's ``y``: always for signals and scenes (``y`` holds the
    values at the coordinates or rays of ``x``), labels only for conditional models otherwise."""
    return getattr(info, "kind", "examples") in ("signal", "scene") or bool(model.conditional)
