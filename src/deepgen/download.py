"""Checksummed downloads, for users with internet access (tests and the demo never download)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from deepgen.errors import DeepgenError


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_verified(
    urls: Sequence[str],
    target: str | os.PathLike,
    digest: str,
    *,
    algorithm: str = "sha256",
    timeout: float = 60.0,
    quiet: bool = False,
) -> Path:
    """Fetch ``target`` from the first of ``urls`` that works, keeping it only if its hash is ``digest``.

    A file already at ``target`` with the right hash is reused. Each attempt streams into a temporary
    file beside ``target`` that is renamed into place only after the hash matched, so an interrupted
    or corrupted download never leaves a file that looks complete.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file() and file_digest(target, algorithm) == digest:
        return target
    errors = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            if not quiet:
                print(f"downloading {url}")
            h = hashlib.new(algorithm)
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
            if h.hexdigest() != digest:
                errors.append(f"{url}: {algorithm} {h.hexdigest()[:12]}..., expected {digest[:12]}...")
                continue
            os.replace(tmp, target)
            return target
        except OSError as e:  # urllib's URLError and HTTPError are OSErrors
            errors.append(f"{url}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DeepgenError(f"could not download {target.name}: {'; '.join(errors)}")
