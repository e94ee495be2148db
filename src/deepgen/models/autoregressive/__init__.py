"""Autoregressive models: exact densities p(x) = prod_i p(x_i | x_<i) by the chain rule.

Every module here is imported by the model registry.
"""

from deepgen.models.autoregressive.made import MADE, MADENetwork

__all__ = ["MADE", "MADENetwork"]
