"""Implicit neural representations: a signal as a network of its coordinates (``siren``)."""

from deepgen.models.implicit.siren import SIREN, SIRENConfig

__all__ = ["SIREN", "SIRENConfig"]
