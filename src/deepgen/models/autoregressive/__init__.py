"""Autoregressive models: exact densities p(x) = prod_i p(x_i | x_<i) by the chain rule.

Every module here is imported by the model registry.
"""

from deepgen.models.autoregressive.made import MADE, MADENetwork
from deepgen.models.autoregressive.pixelcnn import GatedPixelCNN, PixelCNN
from deepgen.models.autoregressive.transformer import ARTransformer

__all__ = ["MADE", "ARTransformer", "GatedPixelCNN", "MADENetwork", "PixelCNN"]
