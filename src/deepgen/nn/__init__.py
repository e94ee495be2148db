"""Shared network blocks: MLPs, convolutional encoders/decoders, masked layers, likelihood heads."""

from deepgen.nn.arch import arch_for
from deepgen.nn.conv import ConvDecoder, ConvEncoder, downsample_sizes
from deepgen.nn.heads import (
    BernoulliHead,
    CategoricalHead,
    GaussianHead,
    LikelihoodHead,
    LogisticHead,
    LogisticMixtureHead,
    likelihood_head,
)
from deepgen.nn.made import MADENetwork
from deepgen.nn.masked import MaskedConv2d, MaskedLinear, made_degrees, made_masks, pixelcnn_mask
from deepgen.nn.mlp import MLP, activation
from deepgen.nn.transformer import CausalTransformer, KVCache, TransformerBlock
from deepgen.nn.unet import UNet, UNetConfig, diffusers_equivalent, load_diffusers_weights, timestep_embedding

__all__ = [
    "MLP",
    "BernoulliHead",
    "CategoricalHead",
    "CausalTransformer",
    "ConvDecoder",
    "ConvEncoder",
    "GaussianHead",
    "KVCache",
    "LikelihoodHead",
    "LogisticHead",
    "LogisticMixtureHead",
    "MADENetwork",
    "MaskedConv2d",
    "MaskedLinear",
    "TransformerBlock",
    "UNet",
    "UNetConfig",
    "activation",
    "arch_for",
    "diffusers_equivalent",
    "downsample_sizes",
    "likelihood_head",
    "load_diffusers_weights",
    "made_degrees",
    "made_masks",
    "pixelcnn_mask",
    "timestep_embedding",
]
