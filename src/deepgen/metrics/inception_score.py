"""Inception Score (Salimans et al., 2016, arXiv:1606.03498): exp(E_x KL(p(y|x) || p(y))).

Computed from any classifier's logits; with deepgen's domain classifiers it is reported as
"IS (deepgen-mnist classifier)", bounded above by the number of classes (10).
"""

from __future__ import annotations

import torch


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """Mean and std of the Inception Score over ``splits`` equal parts of ``logits`` (N, classes)."""
    logp = torch.log_softmax(logits.double(), dim=1)
    scores = []
    for part in torch.tensor_split(logp, splits):
        if len(part) == 0:
            continue
        log_py = torch.logsumexp(part, 0) - torch.log(torch.tensor(float(len(part)), dtype=torch.float64))
        kl = (part.exp() * (part - log_py)).sum(1).mean()
        scores.append(torch.exp(kl).item())
    t = torch.tensor(scores, dtype=torch.float64)
    return t.mean().item(), (t.std().item() if len(scores) > 1 else 0.0)
