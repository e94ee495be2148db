"""Likelihood evaluation: a model's log-likelihood over a dataset, summarised and labelled.

Asks the model, never its class: ``density_kind`` says what the default number is, ``eval_k``
how many Monte Carlo samples it needs, ``likelihood_methods`` which other numbers it offers, and
``prepare_likelihood`` computes what all examples share (an AIS estimate of log Z) once.
"""

from __future__ import annotations

import math

import torch

from deepgen.data import DataInfo, Split
from deepgen.errors import ConfigError
from deepgen.metrics.likelihood import bits_per_dim, summarize_nll
from deepgen.models.base import DensityKind, GenerativeModel, LogLikelihood

#: How an NLL relates to the true one, by the kind of log-likelihood it came from: a lower bound on
#: log p(x) gives an *upper* bound on the NLL.
NLL_LABEL = {"exact": "exact", "lower bound": "upper bound", "estimate": "estimate"}


def na(label: str, reason: str) -> dict:
    """A metric entry that does not apply, with the reason."""
    return {"value": None, "label": label, "reason": reason}


def default_k(model: GenerativeModel, k: int | None, *, full: bool = False) -> int | None:
    """Monte Carlo samples for ``model``'s likelihood: explicit ``k``, else its declared budget.

    ``full`` asks for the papers' setting (``eval_k_full``, e.g. K = 5000 for IWAE-style estimates).
    """
    if k is not None:
        return k
    if full and model.eval_k_full is not None:
        return model.eval_k_full
    return model.eval_k


def log_likelihoods(
    model: GenerativeModel,
    x: torch.Tensor,
    *,
    y: torch.Tensor | None = None,
    k: int | None = None,
    method: str | None = None,
    batch_size: int = 256,
    prepare: bool = True,
    progress=None,
) -> LogLikelihood:
    """``model.log_likelihood`` over ``x`` in batches (no grad), gathered on the CPU in float64.

    ``x`` is checked first (shape, finite, on the data's lattice): a bad batch is a one-line
    :class:`~deepgen.errors.DataError`, never a silent number. Labels ``y`` reach conditional
    models only. ``prepare`` calls ``model.prepare_likelihood`` once first. ``progress(done, total)``
    is called after each batch.
    """
    from deepgen.data import validate_tensor

    validate_tensor(x, model.info, "data to score")
    model.check_method(method)
    dev = model.device
    y = y if model.conditional else None
    if model.conditional and y is None:
        model.check_labels(None, len(x), draw=False)  # a one-line DataError
    vals, errs, first = [], [], None
    with torch.no_grad():
        if prepare:
            model.prepare_likelihood(x.to(dev), k=k)
        for i in range(0, len(x), batch_size):
            yb = None if y is None else y[i : i + batch_size].to(dev)
            ll = model.log_likelihood(x[i : i + batch_size].to(dev), y=yb, k=k, method=method)
            first = first or ll
            vals.append(ll.values.double().cpu())
            if ll.stderr is not None:
                errs.append(ll.stderr.double().cpu())
            if progress is not None:
                progress(min(i + batch_size, len(x)), len(x))
    return LogLikelihood(
        torch.cat(vals), first.kind, first.method, torch.cat(errs) if errs else None, first.shared_stderr
    )


def summarize(ll: LogLikelihood, info: DataInfo):
    """Dataset-level :class:`~deepgen.metrics.likelihood.NLLSummary` of per-example log-likelihoods.

    An error shared by every example (``ll.shared_stderr``, e.g. AIS's log Z) does not average out:
    it is added to the Monte Carlo standard error of the mean in quadrature.
    """
    s = summarize_nll(
        ll.values,
        ll.kind,
        ll.method,
        num_dims=info.dim,
        discrete=info.is_discrete,
        log_scale=info.log_scale,
        stderr=ll.stderr,
    )
    if ll.shared_stderr is not None:
        s.mc_stderr = math.sqrt((s.mc_stderr or 0.0) ** 2 + ll.shared_stderr**2)
    return s


def subset(split: Split, n: int, seed: int = 0) -> Split:
    """A seeded random subset of ``n`` examples (in their original order), for budgeted evaluation."""
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return Split(split.x[idx], None if split.y is None else split.y[idx])


def scored_examples(
    model: GenerativeModel,
    n_all: int,
    k: int | None,
    *,
    method: str | None = None,
    full: bool = False,
    examples: int | None = None,
) -> int:
    """How many of ``n_all`` test examples a likelihood evaluation scores.

    ``examples`` when given (at most ``n_all``); otherwise all of them with ``full``, for a
    single-pass density (``k == 1``) and for an unnormalised model's -E(x), and the model's
    ``eval_examples`` budget for the costly ones (importance sampling, bounds over T diffusion
    steps, ODE solves).
    """
    if examples is not None:
        if examples < 1:
            raise ConfigError(f"examples must be at least 1, got {examples}")
        return min(examples, n_all)
    if model.density_kind == DensityKind.UNNORMALISED and method is None:
        return n_all
    if not full and model.eval_examples and model.eval_examples < n_all and (k is None or k > 1):
        return model.eval_examples
    return n_all


def nll_metrics(
    model: GenerativeModel,
    split: Split,
    info: DataInfo,
    *,
    k: int | None = None,
    method: str | None = None,
    full: bool = False,
    examples: int | None = None,
    progress=None,
) -> dict:
    """Test NLL (nats, raw units) and bits/dim, labelled; n/a with the model's reason otherwise.

    ``examples``: score a seeded subset of this many test examples (the same subset for the
    same number, and a smaller subset lies inside a larger one) instead of :func:`scored_examples`'
    default. An unnormalised model reports the mean of -E(x) instead (``neg_energy``): not an NLL,
    since log Z is unknown, and never converted to bits/dim.
    """
    kind = model.density_kind
    if kind == DensityKind.UNNORMALISED and method is None:
        n = scored_examples(model, len(split), None, examples=examples)
        split = subset(split, n) if n < len(split) else split
        ll = log_likelihoods(model, split.x, y=split.y, progress=progress)
        reason = "unnormalised density: -E(x) omits the unknown log Z, so it is not an NLL"
        return {
            "nll": na("NLL (nats)", reason),
            "bpd": na("bits/dim", reason),
            "neg_energy": {
                "value": ll.values.mean().item(),
                "label": "mean -E(x) (unnormalised log density, nats + unknown log Z)",
                "kind": ll.kind.value,
                "method": ll.method,
                "n": len(ll.values),
            },
        }
    if kind == DensityKind.NONE and method is None:
        reason = model.why_no_density()
        return {"nll": na("NLL (nats)", reason), "bpd": na("bits/dim", reason)}
    k = default_k(model, k, full=full)
    n_all = len(split)
    n = scored_examples(model, n_all, k, method=method, full=full, examples=examples)
    if n < n_all:
        split = subset(split, n)
    ll = log_likelihoods(model, split.x, y=split.y, k=k, method=method, progress=progress)
    s = summarize(ll, info)
    method_text = s.method if s.n == n_all else f"{s.method}, {s.n:,} of {n_all:,} test examples"
    extra = {"kind": s.kind, "method": method_text, "n": s.n, "n_total": n_all, "sem": s.sem}
    extra.update(mc_stderr=s.mc_stderr, k=k)
    what = NLL_LABEL.get(s.kind, s.kind)
    if model.conditional:  # -log p(x | y) is not comparable with another model's -log p(x)
        what += ", given the label y"
        extra["conditional"] = True
    out = {"nll": {"value": s.nll, "label": f"NLL (nats, {what})", **extra}}
    if s.bpd is not None:
        scale = bits_per_dim(1.0, info.dim)
        out["bpd"] = {
            "value": s.bpd,
            "label": f"bits/dim ({what})",
            **extra,
            "sem": s.sem * scale,
            "mc_stderr": None if s.mc_stderr is None else s.mc_stderr * scale,
        }
    else:
        out["bpd"] = na("bits/dim", "continuous data: bits/dim needs discrete levels; see NLL in nats")
    return out
