"""Anomaly detection with any trained generative model: scores from the model's capabilities, and
the numbers that say how well they separate normal from anomalous data.

A generative model of normal data flags what it finds unlikely, or what it cannot rebuild. Each
score below is computed only from a capability the model declares (its density, its latent space,
partial noising), never from its name or family, so every present and future model that offers the
capability gets the score. Higher always means more anomalous.

* ``nll``: -log p(x) in nats under the model's density, as labelled (exact, a bound, an estimate);
  for an unnormalised model (an EBM) the energy E(x), which ranks examples as -log p(x) does
  because log Z is one constant. The classic detector; its known failure is that flows and
  autoregressive models can give *higher* likelihood to some out-of-distribution data than to
  their own (Nalisnick et al. 2019, "Do deep generative models know what they don't know?",
  arXiv:1810.09136).
* ``typicality``: | -log p(x) - H | with H the mean NLL of the model's training data: the test of
  Nalisnick et al. 2019 ("Detecting out-of-distribution inputs to deep generative models using
  typicality", arXiv:1906.02994), applied per example. It flags examples that are far *more* likely
  than typical as well as less likely ones, the answer to the failure above.
* ``reconstruction``: mean squared error of decode(encode(x)) per dimension, for models with a
  latent bottleneck (VAEs; an invertible flow rebuilds every input exactly, so it is not offered).
* ``edit``: mean squared error between x and edit(x, strength), averaged over ``repeats`` draws:
  noise x part-way and let the model denoise it back. Partial diffusion as in AnoDDPM (Wyatt et al.
  2022, CVPR workshops; Gaussian noise here, not their simplex noise): a model of normal data
  restores normal structure, so anomalous parts change most.

:func:`detection_metrics` gives AUROC, average precision (anomalies as positives) and the false
positive rate at 95% true positives; :func:`threshold_for` picks the threshold that flags a chosen
share of *normal* validation data, the one decision a deployed detector needs.

>>> import torch
>>> from deepgen.data import load_dataset
>>> from deepgen.train.run import build_model
>>> data = load_dataset("moons")
>>> model = build_model("gmm", data.info, seed=0)  # untrained: any density model works the same way
>>> s = anomaly_scores(model, data.test.x[:5], "nll")
>>> s.values.shape, s.label
(torch.Size([5]), '-log p(x), nats (log p: exact)')
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepgen.errors import ConfigError, UnknownNameError
from deepgen.models.base import DensityKind, GenerativeModel

#: Score name -> what it is (``deepgen anomaly --help``, reports).
SCORES = {
    "nll": "-log p(x) in nats under the model's density (the energy E(x) for an unnormalised model)",
    "typicality": "| -log p(x) - mean -log p of the training data | (Nalisnick et al. 2019)",
    "reconstruction": "squared error of decode(encode(x)) per dimension (models with a latent bottleneck)",
    "edit": "squared error of edit(x, strength) per dimension, mean of several draws (partial diffusion)",
}


@dataclass
class AnomalyScores:
    """Per-example scores, float64 ``(N,)``, higher = more anomalous, with the words that say what they are."""

    values: torch.Tensor
    score: str
    label: str


def available_scores(model: GenerativeModel) -> list[str]:
    """The scores ``model`` can give, from its density kind and declared capabilities."""
    out = []
    if model.density_kind != DensityKind.NONE:
        out += ["nll", "typicality"]
    if model.supports("encode") and not model.has_exact_density:
        out.append("reconstruction")
    if model.supports("edit"):
        out.append("edit")
    return out


def anomaly_scores(
    model: GenerativeModel,
    x: torch.Tensor,
    score: str = "nll",
    *,
    reference: torch.Tensor | None = None,
    k: int | None = None,
    method: str | None = None,
    strength: float = 0.3,
    repeats: int = 4,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    options: dict | None = None,
) -> AnomalyScores:
    """Score ``x`` (N, *shape), in model space, with ``score`` (see :data:`SCORES`).

    ``reference``: training examples, for ``typicality`` (its mean NLL is the typical value).
    ``k``, ``method``: the likelihood's Monte Carlo budget (default: the model's evaluation budget,
    as ``deepgen eval``) and method (``deepgen list -v``).
    ``strength``, ``repeats``, ``options`` (sampling options, e.g. ``{"sampler": "ddim", "steps": 20}``):
    for ``edit``. ``generator`` makes ``edit`` reproducible for a given ``batch_size``.
    """
    if score not in SCORES:
        raise UnknownNameError("anomaly score", score, list(SCORES))
    offered = available_scores(model)
    if score not in offered:
        raise ConfigError(f"{model.name} cannot give the {score!r} score; it offers: {', '.join(offered) or 'none'}")
    model.eval()
    if score in ("nll", "typicality"):
        nll, label = _nll(model, x, k, method, batch_size)
        if score == "nll":
            return AnomalyScores(nll, score, label)
        if reference is None:
            raise ConfigError("the typicality score needs reference (training) examples")
        typical = _nll(model, reference, k, method, batch_size, prepare=False)[0].mean()
        return AnomalyScores((nll - typical).abs(), score, f"|{label} - {typical.item():.4g}| (training mean)")
    if not 0 < strength <= 1:
        raise ConfigError(f"strength must be in (0, 1], got {strength}")
    if repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {repeats}")
    errors = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(model.device)
            if score == "reconstruction":
                rebuilt = [model.decode(model.encode(xb))]
            else:
                rebuilt = [model.edit(xb, strength, generator=generator, **(options or {})) for _ in range(repeats)]
            err = torch.stack([(r - xb).flatten(1).square().mean(1) for r in rebuilt]).mean(0)
            errors.append(err.double().cpu())
    what = "decode(encode(x))"
    if score == "edit":
        how = "".join(f", {k}={v}" for k, v in (options or {}).items())
        what = f"edit(x, {strength:g}{how}), mean of {repeats}"
    return AnomalyScores(torch.cat(errors), score, f"squared error of {what} per dimension")


def _nll(model, x, k, method, batch_size, prepare=True) -> tuple[torch.Tensor, str]:
    from deepgen.evaluate import log_likelihoods
    from deepgen.evaluate.likelihood import default_k

    k = default_k(model, k)  # the model's evaluation budget (a VAE: importance sampling, not the ELBO)
    ll = log_likelihoods(model, x, k=k, method=method, batch_size=batch_size, prepare=prepare)
    if ll.kind == DensityKind.UNNORMALISED:  # values are -E(x): log p(x) up to the constant log Z
        return -ll.values.double(), "energy E(x) (unnormalised: -log p(x) + log Z)"
    return -ll.values.double(), f"-log p(x), nats (log p: {ll.kind.value})"


# -- how well a score separates the two sets --------------------------------------------------------
def detection_metrics(normal: torch.Tensor, anomalous: torch.Tensor) -> dict[str, float]:
    """AUROC, average precision (anomalies are the positives) and FPR at 95% TPR of a score.

    AUROC is the probability that a random anomaly scores above a random normal example (ties
    count half): 0.5 is chance, 1 perfect separation. Average precision is the area under the
    precision-recall curve (chance: the share of anomalies). ``fpr_at_95_tpr``: the share of normal
    examples flagged when the threshold flags 95% of the anomalies (lower is better).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    s, t = _labelled(normal, anomalous)
    fpr, tpr, _ = roc_curve(t, s)
    return {
        "auroc": float(roc_auc_score(t, s)),
        "average_precision": float(average_precision_score(t, s)),
        "fpr_at_95_tpr": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
        "n_normal": int(len(normal)),
        "n_anomalous": int(len(anomalous)),
    }


def threshold_for(normal_scores: torch.Tensor, fpr: float = 0.05) -> float:
    """The score above which a share ``fpr`` of these normal (validation) examples is flagged."""
    if not 0 < fpr < 1:
        raise ConfigError(f"fpr must be in (0, 1), got {fpr}")
    return float(torch.quantile(normal_scores.double(), 1 - fpr))


def flag_rates(normal: torch.Tensor, anomalous: torch.Tensor, threshold: float) -> dict[str, float]:
    """Examples flagged (score > threshold): the shares of anomalies (TPR) and of normal data (FPR), and precision."""
    tp, fp = int((anomalous > threshold).sum()), int((normal > threshold).sum())
    return {
        "threshold": threshold,
        "tpr": tp / max(len(anomalous), 1),
        "fpr": fp / max(len(normal), 1),
        "precision": tp / max(tp + fp, 1),
    }


def _labelled(normal, anomalous) -> tuple[np.ndarray, np.ndarray]:
    s = torch.cat([normal.double().flatten(), anomalous.double().flatten()]).numpy()
    if not np.isfinite(s).all():
        raise ConfigError("anomaly scores contain NaN or infinity; they cannot be ranked")
    if len(normal) == 0 or len(anomalous) == 0:
        raise ConfigError("detection metrics need normal and anomalous examples, at least one of each")
    return s, np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]


def save_score_histogram(
    normal: torch.Tensor, anomalous: torch.Tensor, path, *, label: str = "", threshold: float | None = None, title=""
):
    """Histograms of the two sets' scores (shared bins, log-spaced when the scores span decades; each
    bar is the share of its set in that bin, so sets of different sizes compare) and the threshold."""
    from deepgen.plots import _figure

    a, b = normal.double().numpy(), anomalous.double().numpy()
    both = np.r_[a, b]
    lo, hi = float(both.min()), float(both.max())
    log = lo > 0 and hi / lo > 100
    bins = np.geomspace(lo, hi, 50) if log else np.linspace(lo, hi if hi > lo else lo + 1, 50)
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    for v, name, colour in ((a, "normal", "tab:blue"), (b, "anomalous", "tab:red")):
        share = np.full(len(v), 1.0 / len(v))
        ax.hist(v, bins=bins, weights=share, alpha=0.6, label=f"{name} (n = {len(v):,})", color=colour)
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.4g}")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(label or "anomaly score")
    ax.set_ylabel("share of the set")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
