"""Choosing a network architecture from the data: convolutional for images, MLP otherwise.

Models offer ``arch`` = ``auto`` / ``mlp`` / ``conv`` (a GAN calls its convolutional networks
``dcgan``, after Radford et al., 2016, arXiv:1511.06434); :func:`arch_for` resolves ``auto`` and
refuses convolutions on data that are not images, in one line.

>>> from deepgen.data import DataInfo
>>> arch_for(DataInfo("digits", (1, 8, 8), 17), "auto")
'conv'
>>> arch_for(DataInfo("moons", (2,)), "auto")
'mlp'
"""

from __future__ import annotations

from deepgen.data.base import DataInfo
from deepgen.errors import ConfigError, DataError

ARCHS = ("auto", "mlp", "conv")


def arch_for(info: DataInfo, choice: str = "auto", *, model: str = "model", conv: str = "conv") -> str:
    """``"mlp"`` or the convolutional architecture's name ``conv`` for data ``info``.

    Args:
        info: the data.
        choice: ``auto`` (convolutional for images (C, H, W), MLP otherwise), ``mlp`` or ``conv``
            (the name passed as ``conv``, e.g. ``"dcgan"``).
        model: the model's name, for error messages.
        conv: what the model calls its convolutional architecture.

    Raises:
        DataError: a convolutional architecture asked for data that are not images.
    """
    if choice == "auto":
        return conv if info.is_image else "mlp"
    if choice == "mlp":
        return "mlp"
    if choice == conv:
        if not info.is_image:
            raise DataError(
                f"{model}: arch={conv} needs image data (C, H, W); {info.name} has shape {tuple(info.shape)}, "
                "use arch=mlp"
            )
        return conv
    raise ConfigError(f"{model}: unknown arch {choice!r}; valid: auto, mlp, {conv}")
