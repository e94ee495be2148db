"""Generative classifiers: a class-conditional density model classifies by Bayes' rule.

    log p(y | x) = log p(x | y) + log p(y) - log sum_c p(x | c) p(c)

Any model that is ``conditional`` and has a density (exact, a bound or an estimate) is a classifier:
a class-conditional flow, PixelCNN or transformer exactly, a conditional diffusion model through its
variational bound (an approximation of Bayes' rule that replaces each log p(x | y) by its bound).
The class prior p(y) is the training split's class frequencies (add-one smoothed). Nothing here
knows a model's name or family: it asks for labels and for ``log_likelihood(x, y=c)``.

The construction is the lectures' (and Bishop 2006, section 4.2) generative approach to
classification; for deep models see e.g. Fetaya et al. 2020 (ICLR, "Understanding the limitations
of conditional generative models"), who find that exact-likelihood conditional models classify
well below discriminative networks of the same size, because most of log p(x | y) models pixels
that do not depend on the class.

>>> import torch
>>> from deepgen.data import DataInfo
>>> from deepgen.train.run import build_model
>>> model = build_model("maf", DataInfo("pts", (2,), num_classes=3), {"class_conditional": True}, seed=0)
>>> log_post = class_posteriors(model, torch.randn(4, 2), torch.log(torch.full((3,), 1 / 3)))
>>> log_post.shape, bool(torch.allclose(log_post.exp().sum(1), torch.ones(4, dtype=torch.float64)))
(torch.Size([4, 3]), True)
"""

from __future__ import annotations

import torch

from deepgen.errors import ConfigError
from deepgen.models.base import DensityKind, GenerativeModel


def check_classifier(model: GenerativeModel) -> None:
    """Raise a one-line ConfigError unless ``model`` is a class-conditional model with a density."""
    if not model.conditional:
        hint = f" (train it with -o {model.condition_option}=true)" if model.condition_option else ""
        raise ConfigError(f"{model.name} is not class-conditional, so it cannot classify{hint}")
    if model.density_kind in (DensityKind.NONE, DensityKind.UNNORMALISED):
        raise ConfigError(
            f"{model.name} has no normalised density ({model.density_kind.value}): Bayes' rule needs "
            "log p(x | y) for every class on one scale"
        )


def class_prior(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """log p(y) (num_classes,) from training labels ``y``, add-one smoothed (float64)."""
    counts = torch.bincount(y.long(), minlength=num_classes).double() + 1.0
    return (counts / counts.sum()).log()


def class_log_likelihoods(
    model: GenerativeModel,
    x: torch.Tensor,
    *,
    k: int | None = None,
    method: str | None = None,
    batch_size: int = 256,
    seed: int = 0,
) -> torch.Tensor:
    """log p(x | y = c) for every example and class: (N, num_classes), float64, nats.

    Every class is scored with the same random numbers (the RNG reseeded with ``seed`` for each):
    a Monte Carlo likelihood (dequantisation noise, importance samples, a diffusion bound's draws)
    then differs between classes by the model, not by its noise. The global RNG is left as it was.
    """
    from deepgen.evaluate import log_likelihoods
    from deepgen.train.accel import fork_rng

    check_classifier(model)
    cols = []
    for label in range(model.info.num_classes):
        y = torch.full((len(x),), label, dtype=torch.long)
        with fork_rng(model.device):
            torch.manual_seed(seed)
            ll = log_likelihoods(model, x, y=y, k=k, method=method, batch_size=batch_size, prepare=label == 0)
        cols.append(ll.values.double())
    return torch.stack(cols, 1)


def class_posteriors(model: GenerativeModel, x: torch.Tensor, log_prior: torch.Tensor, **kwargs) -> torch.Tensor:
    """log p(y | x) (N, num_classes) by Bayes' rule, normalised over the classes."""
    ll = class_log_likelihoods(model, x, **kwargs)
    return torch.log_softmax(ll + log_prior.double().to(ll.device), dim=1)


def classification_metrics(log_post: torch.Tensor, y: torch.Tensor) -> dict:
    """Accuracy, the mean log-probability of the true class (nats; 0 is perfect, -log C is chance),
    the expected calibration error (15 equal-width confidence bins) and the confusion matrix."""
    if len(y) == 0:
        raise ConfigError("no labelled examples to classify")
    y = y.long().cpu()
    log_post = log_post.cpu()
    pred = log_post.argmax(1)
    conf = log_post.max(1).values.exp()
    correct = (pred == y).double()
    ece = 0.0
    edges = torch.linspace(0, 1, 16, dtype=torch.float64)
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.double().mean().item() * abs(correct[inside].mean().item() - conf[inside].mean().item())
    c = log_post.shape[1]
    confusion = torch.zeros(c, c, dtype=torch.long)
    confusion.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    return {
        "accuracy": correct.mean().item(),
        "mean_log_prob_true_class": log_post.gather(1, y[:, None]).mean().item(),
        "expected_calibration_error": ece,
        "confusion": confusion.tolist(),
        "n": len(y),
    }
