"""Shared network blocks: MLPs and convolutional encoders/decoders used across families."""

from deepgen.nn.conv import ConvDecoder, ConvEncoder, downsample_sizes
from deepgen.nn.mlp import MLP, activation

__all__ = ["MLP", "ConvEncoder", "ConvDecoder", "activation", "downsample_sizes"]
