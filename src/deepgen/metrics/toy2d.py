"""Metrics for the 2D toys: mode coverage (Metz et al., 2017, Unrolled GANs, arXiv:1611.02163;
Srivastava et al., 2017, VEEGAN, arXiv:1705.07761) and the entropy floor of each distribution.

Mode coverage follows VEEGAN's protocol: draw 2,500 samples; a sample is *high quality* if it lies
within 3 standard deviations of the nearest mode centre; a mode is *captured* when high-quality
samples are assigned to it. VEEGAN counts a single sample; deepgen requires ``min_count = 20``
(0.8% of the draws) because the FFJORD-scale ``8gaussians`` modes are only about 6 standard
deviations apart, so stray tail samples of one mode would otherwise "capture" its neighbours.
"""

from __future__ import annotations

import torch


def mode_coverage(
    samples: torch.Tensor, centers: torch.Tensor, std: float, n_std: float = 3.0, min_count: int = 20
) -> dict:
    """Modes captured and fraction of high-quality samples (within ``n_std`` std of a mode)."""
    d = torch.cdist(samples.double(), centers.double())
    dmin, nearest = d.min(1)
    good = dmin <= n_std * std
    counts = torch.bincount(nearest[good], minlength=len(centers))
    return {
        "modes": int((counts >= min_count).sum()),
        "total_modes": len(centers),
        "high_quality": good.double().mean().item(),
    }
