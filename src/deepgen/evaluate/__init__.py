"""Evaluate a model: every metric that applies, each labelled, with ``n/a`` and a reason otherwise.

``evaluate(model, dataset)`` returns a JSON-ready dict ``{"metrics": {name: entry}}`` where each
entry has ``value`` (None when not applicable), ``label`` (what it is, e.g. "FID (deepgen-digits
features)"), and ``reason`` when the value is None. One module per capability:

* :mod:`deepgen.evaluate.likelihood`: test NLL in nats and bits/dim, labelled exact / lower bound /
  estimate; the mean -E(x) of an unnormalised model, never called an NLL;
* :mod:`deepgen.evaluate.quality`: FID, KID, precision/recall (+ density/coverage) and the
  Inception Score with a feature network for images; MMD^2 and precision/recall in data space for
  vectors; mode coverage and the entropy floor for the 2D toys;
* :mod:`deepgen.evaluate.fidelity`: PSNR and SSIM of a fitted signal or scene on held-out rows
  (a signal at twice its resolution, a scene's held-out views);
* cost: parameters and sampling throughput (training throughput comes from the run's log).

Everything is asked of the model (density kind, budgets, sampling options, labels), never decided
by its name or family.
"""

from __future__ import annotations

import torch

from deepgen.config import to_dict
from deepgen.data import Dataset
from deepgen.evaluate.likelihood import (
    NLL_LABEL,
    default_k,
    log_likelihoods,
    na,
    nll_metrics,
    scored_examples,
    summarize,
)
from deepgen.evaluate.progress import Progress
from deepgen.evaluate.quality import SampleQuality, draw_samples, entropy_floor
from deepgen.models.base import GenerativeModel

__all__ = [
    "NLL_LABEL",
    "SampleQuality",
    "default_k",
    "default_n_samples",
    "draw_samples",
    "entropy_floor",
    "evaluate",
    "log_likelihoods",
    "na",
    "nll_metrics",
    "summarize",
]


def default_n_samples(model: GenerativeModel, quality: SampleQuality, *, equal: bool = False) -> int:
    """Samples for quality metrics: ``quality.n`` (the size every row of a comparison shares: the
    held-out test split for images, at most 10,000; 2,500 for vectors), or the model's own
    ``eval_samples`` budget when rows need not be equal (``deepgen eval`` of one model)."""
    if model.eval_samples is not None and not equal:
        return min(model.eval_samples, quality.max_n)
    return quality.n


def class_accuracy(quality: SampleQuality, samples: torch.Tensor, classes: int) -> dict:
    """A conditional model's samples (drawn for classes 0, 1, ..., C-1, 0, ... in turn, as
    :func:`draw_samples` does) classified by the feature network, when it is a classifier."""
    from deepgen.metrics.features import DomainClassifier, accuracy

    if not isinstance(quality.network, DomainClassifier):
        return na(
            "class accuracy", quality.reason or "needs a classifier feature network (deepgen-digits, deepgen-mnist)"
        )
    labels = torch.arange(len(samples)) % classes
    return {
        "value": accuracy(quality.network, samples, labels),
        "label": f"class accuracy of samples (the {quality.feature_label.replace(' features', '')} classifier)",
    }


def evaluate(
    model: GenerativeModel,
    ds: Dataset,
    *,
    k: int | None = None,
    method: str | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    quality: SampleQuality | None = None,
    features: str | None = None,
    sample_options: dict | None = None,
    full: bool = False,
    examples: int | None = None,
    equal_n: bool = False,
    progress: bool | Progress = False,
) -> dict:
    """Every applicable metric for ``model`` on ``ds`` (test split for NLL), labelled.

    ``k``/``method``: the likelihood's Monte Carlo samples and method (default: the model's
    ``eval_k``, or ``eval_k_full`` with ``full``); ``examples``: how many test examples the
    likelihood scores (default: the model's ``eval_examples`` budget, all with ``full``);
    ``sample_options``: the model's sampling options,
    recorded in the result as ``sampling`` (e.g. "DDIM, 50 steps"); ``equal_n``: draw exactly
    ``quality.n`` samples, the size of the real-data floor row (comparisons). ``progress``: print
    a line per phase (likelihood, sampling, features, distances) with the time left; the phases'
    timings are returned as ``timings``.
    """
    prog = progress if isinstance(progress, Progress) else Progress(enabled=bool(progress))
    info = ds.info
    model.eval()
    opts = model.sample_options(**(sample_options or {}))
    result = {
        "model": model.name,
        "family": model.family,
        "density_kind": model.density_kind.value,
        "has_exact_density": model.has_exact_density,
        "sampling": model.describe_sampling(opts),
        "sample_options": to_dict(opts),
        "data": info.name,
        "data_kind": info.kind,
    }
    if info.kind in ("signal", "scene"):  # one function fitted to rows: fidelity, not a distribution
        from deepgen.evaluate.fidelity import fidelity_metrics

        with prog.phase("fidelity"):
            metrics = fidelity_metrics(model, ds)
        metrics["parameters"] = {"value": model.num_parameters, "label": "parameters"}
        return {**result, "metrics": metrics}
    if not model.samples_from_noise:  # a translator: its translations scored against the target domain
        from deepgen.evaluate.translation import translation_metrics

        with prog.phase("translation"):
            metrics = translation_metrics(model, ds, features=features, n=n_samples, seed=seed)
        metrics["parameters"] = {"value": model.num_parameters, "label": "parameters"}
        return {**result, "metrics": metrics, "timings": prog.timings}
    if model.density_kind.value != "none" or method is not None:
        k_used = default_k(model, k, full=full)
        n_scored = scored_examples(model, len(ds.test), k_used, method=method, full=full, examples=examples)
        with prog.phase("likelihood", n_scored, "examples") as update:
            metrics = nll_metrics(
                model, ds.test, info, k=k, method=method, full=full, examples=examples, progress=update
            )
    else:
        metrics = nll_metrics(model, ds.test, info)
    floor = entropy_floor(info)
    if floor is not None:
        metrics["entropy"] = floor
        nll = metrics["nll"]["value"]
        metrics["nll_gap"] = (
            {"value": nll - floor["value"], "label": "NLL - entropy (nats, >= 0 in expectation)"}
            if nll is not None
            else na("NLL - entropy", metrics["nll"]["reason"])
        )
    if quality is None:
        with prog.phase("reference statistics"):
            quality = SampleQuality.for_dataset(ds, features)
    n = n_samples or default_n_samples(model, quality, equal=equal_n)
    with prog.phase("sampling", n, "samples") as update:
        timing: dict = {}
        samples, rate = draw_samples(model, n, seed=seed, options=to_dict(opts), progress=update, timing=timing)
    metrics.update(quality.evaluate(samples, seed, progress=prog))
    if model.conditional and info.num_classes:
        metrics["class_accuracy"] = class_accuracy(quality, samples, info.num_classes)
    metrics["sampling_speed"] = {
        "value": rate,
        "label": "sampling throughput (samples/s, median over batches)",
        **{k: v for k, v in timing.items() if k != "median"},
    }
    metrics["parameters"] = {"value": model.num_parameters, "label": "parameters"}
    return {**result, "n_samples": n, "metrics": metrics, "timings": prog.timings}
