"""Normalizing flows: :class:`Flow` (a bijector over a base distribution) and, later, named flows.

Every module here is imported by the model registry, so this package imports only the light base.
"""

from deepgen.models.flows.base import Flow, FlowSampleOptions

__all__ = ["Flow", "FlowSampleOptions"]
