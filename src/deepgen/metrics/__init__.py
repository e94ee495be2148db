"""Evaluation metrics as pure functions with stated units.

Likelihood (nats, bits/dim, importance sampling, AIS), sample quality (FID, KID, precision/recall,
density/coverage, Inception Score), 2D toy metrics and cost metrics. Feature networks live in
:mod:`deepgen.metrics.features` (deepgen's own) and :mod:`deepgen.metrics.inception` (FID InceptionV3).
"""

from deepgen.metrics.fid import GaussianStats, fid_from_features, fid_from_stats, frechet_distance
from deepgen.metrics.inception_score import inception_score
from deepgen.metrics.kid import gaussian_mmd2, kernel_inception_distance
from deepgen.metrics.likelihood import (
    NLLSummary,
    ais_log_partition,
    bits_per_dim,
    importance_sampled_log_likelihood,
    logmeanexp_with_stderr,
    summarize_nll,
)
from deepgen.metrics.precision_recall import precision_recall
from deepgen.metrics.toy2d import mode_coverage

# AIS transition kernels: implemented in deepgen.samplers, re-exported for backward compatibility.
from deepgen.samplers.mcmc import mala_kernel, metropolis_flip_kernel

__all__ = [
    "GaussianStats",
    "NLLSummary",
    "ais_log_partition",
    "bits_per_dim",
    "fid_from_features",
    "fid_from_stats",
    "frechet_distance",
    "gaussian_mmd2",
    "importance_sampled_log_likelihood",
    "inception_score",
    "kernel_inception_distance",
    "logmeanexp_with_stderr",
    "mala_kernel",
    "metropolis_flip_kernel",
    "mode_coverage",
    "precision_recall",
    "summarize_nll",
]
