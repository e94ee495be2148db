"""Implicit networks: a signal as a network of its coordinates (``siren``), a scene as a radiance
field (``nerf``), and Gradient Origin Networks with an implicit decoder over pixel coordinates
(``gon``, ``vgon``)."""

from deepgen.models.implicit.gon import GON, VGON, GONConfig, VGONConfig
from deepgen.models.implicit.nerf import NeRF, NeRFConfig
from deepgen.models.implicit.siren import SIREN, SIRENConfig

__all__ = ["GON", "GONConfig", "NeRF", "NeRFConfig", "SIREN", "SIRENConfig", "VGON", "VGONConfig"]
