"""Checkpoints that never lose work and never execute code.

Writing: ``torch.save`` to a temporary file in the same folder, flush, ``fsync``, atomic
``os.replace`` over the old file, then ``fsync`` the folder -- a crash at any instant leaves either
the old or the new checkpoint, never a torn one. Reading: ``torch.load(weights_only=True)``, which
refuses pickled code, then a check that the file is a deepgen checkpoint of a known version.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from deepgen.errors import CheckpointError, shorten

FORMAT = "deepgen.checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("model_name", "model_config", "data_info", "train_config", "step", "model")

ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive (torch >= 1.6)
PICKLE_PROTOCOLS = (2, 3, 4, 5)  # the legacy torch format (and plain pickles) start b"\x80" + protocol


def not_a_torch_file(path: Path) -> str | None:
    """Why ``path`` cannot be a file written by ``torch.save``, or None when its first bytes fit.

    Checked before ``torch.load``: on random bytes or text, torch falls back to unpickling and
    reports "pickled Python objects", which misleads a user who passed the wrong file.
    """
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(ZIP_MAGIC) or (head[:1] == b"\x80" and head[1:2] and head[1] in PICKLE_PROTOCOLS):
        return None  # a pickle that is not a checkpoint is refused by the weights-only load below
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy array, not a zip/torch file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not just a character cut at the end of the 512 bytes read
            return "not a zip/torch file"
    return "a text file, not a zip/torch file"


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` atomically (temp file, flush, fsync, rename, fsync dir)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    # a process killed mid-write (SIGKILL) leaves its temporary file behind; the target is intact
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        stale.unlink(missing_ok=True)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some file systems cannot fsync a directory; the rename is still atomic
        pass


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a deepgen checkpoint; any problem is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint here (train first, or check the path)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    why = not_a_torch_file(path)
    if why:
        raise CheckpointError(f"{path}: not a deepgen checkpoint ({why})")
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickles; we raise our own error
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe content"
        raise CheckpointError(
            f"{path}: refused to load: the file holds Python objects that a weights-only load does not "
            f"execute ({shorten(first, 120)}); it is not a deepgen checkpoint"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({shorten(msg, 160)})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a deepgen checkpoint (no '{FORMAT}' header)")
    if ckpt.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer deepgen (format {ckpt['format_version']}, this one reads {FORMAT_VERSION})"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is missing {', '.join(missing)}")
    return ckpt
