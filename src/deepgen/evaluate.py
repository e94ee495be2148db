"""Evaluate a model: every metric that applies, each labelled, with ``n/a`` and a reason otherwise.

``evaluate(model, dataset)`` returns a JSON-ready dict ``{"metrics": {name: entry}}`` where each
entry has ``value`` (None when not applicable), ``label`` (what it is, e.g. "FID (deepgen-digits
features)"), and ``reason`` when the value is None. Metric families:

* likelihood: test NLL in nats and bits/dim, labelled exact / lower bound / estimate;
* sample quality: FID, KID, precision/recall (+ density/coverage), Inception Score with a feature
  network for images; MMD^2 and precision/recall in data space for vectors; mode coverage and the
  entropy floor for the 2D toys;
* cost: parameters and sampling throughput (training throughput comes from the run's log).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from deepgen.data import DataInfo, Dataset, Split
from deepgen.data import toy2d as toy
from deepgen.errors import DeepgenError
from deepgen.metrics.likelihood import summarize_nll
from deepgen.models.base import DensityKind, GenerativeModel, LogLikelihood

#: How an NLL relates to the true one, by the kind of log-likelihood it came from: a lower bound on
#: log p(x) gives an *upper* bound on the NLL.
NLL_LABEL = {"exact": "exact", "lower bound": "upper bound", "estimate": "estimate"}


def na(label: str, reason: str) -> dict:
    return {"value": None, "label": label, "reason": reason}


def log_likelihoods(
    model: GenerativeModel, x: torch.Tensor, *, k: int | None = None, batch_size: int = 256
) -> LogLikelihood:
    """``model.log_likelihood`` over ``x`` in batches (no grad), gathered on the CPU in float64.

    ``x`` is checked first (shape, finite, on the data's lattice): a bad batch is a one-line
    :class:`~deepgen.errors.DataError`, never a silent number.
    """
    from deepgen.data import validate_tensor

    validate_tensor(x, model.info, "data to score")
    dev = next(model.parameters()).device
    vals, errs, first = [], [], None
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            ll = model.log_likelihood(x[i : i + batch_size].to(dev), k=k)
            first = first or ll
            vals.append(ll.values.detach().double().cpu())
            if ll.stderr is not None:
                errs.append(ll.stderr.detach().double().cpu())
    return LogLikelihood(torch.cat(vals), first.kind, first.method, torch.cat(errs) if errs else None)


def summarize(ll: LogLikelihood, info: DataInfo):
    """Dataset-level :class:`~deepgen.metrics.likelihood.NLLSummary` of per-example log-likelihoods."""
    return summarize_nll(
        ll.values,
        ll.kind,
        ll.method,
        num_dims=info.dim,
        discrete=info.is_discrete,
        log_scale=info.log_scale,
        stderr=ll.stderr,
    )


def default_k(model: GenerativeModel, k: int | None) -> int | None:
    """Monte Carlo samples for the density: explicit ``k``, else 100 for latent-variable models."""
    from deepgen.models.base import LatentVariableModel

    if k is not None:
        return k
    return 100 if isinstance(model, LatentVariableModel) else None


def nll_metrics(model: GenerativeModel, split: Split, info: DataInfo, *, k: int | None = None) -> dict:
    """Test NLL (nats, raw units) and bits/dim, labelled; n/a with the model's reason otherwise."""
    kind = model.density_kind
    if kind in (DensityKind.NONE, DensityKind.UNNORMALISED):
        reason = model.why_no_density()
        return {"nll": na("NLL (nats)", reason), "bpd": na("bits/dim", reason)}
    ll = log_likelihoods(model, split.x, k=default_k(model, k))
    s = summarize(ll, info)
    extra = {"kind": s.kind, "method": s.method, "n": s.n, "sem": s.sem, "mc_stderr": s.mc_stderr}
    what = NLL_LABEL.get(s.kind, s.kind)
    out = {"nll": {"value": s.nll, "label": f"NLL (nats, {what})", **extra}}
    if s.bpd is not None:
        out["bpd"] = {
            "value": s.bpd,
            "label": f"bits/dim ({what})",
            **extra,
            "sem": s.sem / (info.dim * math.log(2)),
        }
    else:
        out["bpd"] = na("bits/dim", "continuous data: bits/dim needs discrete levels; see NLL in nats")
    return out


def draw_samples(
    model: GenerativeModel, n: int, *, seed: int = 0, batch_size: int = 1000
) -> tuple[torch.Tensor, float]:
    """``n`` samples (CPU) and the sampling throughput in samples/s (after a small warm-up draw)."""
    dev = next(model.parameters()).device
    g = torch.Generator(device=dev).manual_seed(seed)
    with torch.no_grad():
        model.sample(min(8, n), generator=torch.Generator(device=dev).manual_seed(seed + 1))
        t0 = time.perf_counter()
        parts = [model.sample(min(batch_size, n - i), generator=g) for i in range(0, n, batch_size)]
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        dt = time.perf_counter() - t0
    return torch.cat(parts).cpu(), n / max(dt, 1e-9)


@dataclass
class SampleQuality:
    """Reference statistics of a dataset, computed once, to score any number of sample sets.

    Images: features from ``features`` (a shipped network name, ``inception:PATH`` or a saved
    network file; default by image shape); the reference set is the training data (train + val),
    as for FID in Heusel et al. Vectors: data space against the test split. 2D toys add mode
    coverage (8gaussians, 25gaussians) and the entropy floor.
    """

    info: DataInfo
    reference: torch.Tensor
    held_out: torch.Tensor  # real data disjoint from ``reference``: scores the data floor
    features: str | None = None
    network: object = field(default=None, repr=False)
    ref_feats: torch.Tensor | None = field(default=None, repr=False)
    ref_stats: object = field(default=None, repr=False)
    feature_label: str = ""
    reason: str = ""

    @classmethod
    def for_dataset(cls, ds: Dataset, features: str | None = None, max_reference: int = 60_000) -> SampleQuality:
        info = ds.info
        if info.is_image:  # reference: the training data, binarised as the model saw it
            ref = torch.cat([ds.train_for_evaluation(), ds.val.x])[:max_reference]
            floor = ds.test.x
        else:  # reference: the test split; the floor compares the (disjoint) training data with it
            ref, floor = ds.test.x, ds.train.x
        q = cls(info, ref, floor, features)
        q._setup()
        return q

    def _setup(self) -> None:
        from deepgen.metrics import features as F
        from deepgen.metrics.fid import GaussianStats

        if not self.info.is_image:
            self.feature_label = "data space"
            return
        if not self.info.is_discrete:
            self.reason = (
                "continuous (standardised) image data: the feature networks expect pixel values in "
                "[0, 1]; load 8-bit images, or integer data with --levels"
            )
            return
        name = self.features or F.network_for(self.info.shape)
        if name is None:
            self.reason = (
                f"no feature network for images of shape {self.info.shape}: pass --features "
                "inception:PATH (standard FID weights) or a network from 'deepgen train-features'"
            )
            return
        if name.startswith("inception:"):
            from deepgen.metrics.inception import load_fid_inception

            self.network = load_fid_inception(Path(name.split(":", 1)[1]).expanduser())
            self.feature_label = "InceptionV3 pool3 features"
        else:
            self.network = F.load_feature_network(name)
            self.feature_label = f"{name} features"
        if isinstance(self.network, F.DomainClassifier) and tuple(self.network.shape) != tuple(self.info.shape):
            raise DeepgenError(
                f"feature network {name} expects images {self.network.shape}, data are {self.info.shape}"
            )
        self.ref_feats, _ = F.extract(self.network, self.reference)
        self.ref_stats = GaussianStats.of(self.ref_feats)

    def evaluate(self, samples: torch.Tensor, seed: int = 0) -> dict:
        if self.info.is_image:
            return self._image_metrics(samples, seed)
        return self._vector_metrics(samples, seed)

    def data_floor(self, seed: int = 0) -> dict:
        """The metrics that real data disjoint from the reference get: the best a model can expect."""
        return self.evaluate(self.held_out, seed)

    def _image_metrics(self, samples, seed) -> dict:
        from deepgen.metrics.features import extract
        from deepgen.metrics.fid import GaussianStats, fid_from_stats
        from deepgen.metrics.inception_score import inception_score
        from deepgen.metrics.kid import kernel_inception_distance
        from deepgen.metrics.precision_recall import precision_recall

        lab = self.feature_label
        if self.network is None:
            return {m: na(m.upper(), self.reason) for m in ("fid", "kid", "precision", "recall", "is")}
        feats, logits = extract(self.network, samples)
        g = torch.Generator().manual_seed(seed)
        kid, kid_std = kernel_inception_distance(self.ref_feats, feats, generator=g)
        n_pr = min(len(feats), len(self.ref_feats), 10_000)
        ref_pr = self.ref_feats[torch.randperm(len(self.ref_feats), generator=g)[:n_pr]]
        pr = precision_recall(ref_pr, feats[:n_pr])
        is_mean, is_std = inception_score(logits)
        cls = "classifier" if "features" in lab else ""
        n = {"n_fake": len(samples), "n_real": len(self.ref_feats)}
        return {
            "fid": {
                "value": fid_from_stats(self.ref_stats, GaussianStats.of(feats)),
                "label": f"FID ({lab})",
                **n,
            },
            "kid": {"value": kid, "std": kid_std, "label": f"KID ({lab})", **n},
            "precision": {"value": pr["precision"], "label": f"precision ({lab}, k=3)"},
            "recall": {"value": pr["recall"], "label": f"recall ({lab}, k=3)"},
            "density": {"value": pr["density"], "label": f"density ({lab}, k=3)"},
            "coverage": {"value": pr["coverage"], "label": f"coverage ({lab}, k=3)"},
            "is": {"value": is_mean, "std": is_std, "label": f"IS ({lab.replace('features', cls).strip()})"},
        }

    def _vector_metrics(self, samples, seed) -> dict:
        from deepgen.metrics.kid import gaussian_mmd2
        from deepgen.metrics.precision_recall import precision_recall

        g = torch.Generator().manual_seed(seed)
        n = min(2000, len(samples), len(self.reference))
        ref = self.reference[torch.randperm(len(self.reference), generator=g)[:n]]
        fake = samples[torch.randperm(len(samples), generator=g)[:n]]
        out = {
            "mmd2": {
                "value": gaussian_mmd2(ref, fake),
                "label": "MMD^2 (Gaussian kernels, data space)",
                "n": n,
            }
        }
        pr = precision_recall(ref, fake)
        out["precision"] = {"value": pr["precision"], "label": "precision (data space, k=3)"}
        out["recall"] = {"value": pr["recall"], "label": "recall (data space, k=3)"}
        name = self.info.name
        modes = toy.mode_centers(name)
        if modes is not None:
            from deepgen.metrics.toy2d import mode_coverage

            cov = mode_coverage(samples[:2500], *modes)
            out["modes"] = {
                "value": cov["modes"],
                "label": f"modes captured (of {cov['total_modes']}, 3 std)",
            }
            out["high_quality"] = {
                "value": cov["high_quality"],
                "label": "high-quality samples (within 3 std)",
            }
        return out


def entropy_floor(info: DataInfo) -> dict | None:
    """The toy distribution's entropy (the lowest expected NLL any model can reach), if known."""
    if info.name not in toy.TOY2D:
        return None
    try:
        from deepgen.metrics.toy2d_density import entropy
    except ImportError:  # pragma: no cover
        return None
    e = entropy(info.name)
    return {"value": e["entropy_nats"], "stderr": e.get("stderr"), "label": "entropy floor H (nats)"}


def evaluate(
    model: GenerativeModel,
    ds: Dataset,
    *,
    k: int | None = None,
    n_samples: int | None = None,
    seed: int = 0,
    quality: SampleQuality | None = None,
    features: str | None = None,
) -> dict:
    """Every applicable metric for ``model`` on ``ds`` (test split for NLL), labelled."""
    info = ds.info
    model.eval()
    metrics = nll_metrics(model, ds.test, info, k=k)
    floor = entropy_floor(info)
    if floor is not None:
        metrics["entropy"] = floor
        nll = metrics["nll"]["value"]
        metrics["nll_gap"] = (
            {"value": nll - floor["value"], "label": "NLL - entropy (nats, >= 0 in expectation)"}
            if nll is not None
            else na("NLL - entropy", metrics["nll"]["reason"])
        )
    quality = quality or SampleQuality.for_dataset(ds, features)
    n = n_samples or (2500 if info.dim == 2 else min(10_000, max(len(quality.reference), 1000)))
    samples, rate = draw_samples(model, n, seed=seed)
    metrics.update(quality.evaluate(samples, seed))
    metrics["sampling_speed"] = {"value": rate, "label": "sampling throughput (samples/s)"}
    metrics["parameters"] = {"value": model.num_parameters, "label": "parameters"}
    return {
        "model": model.name,
        "family": model.family,
        "density_kind": model.density_kind.value,
        "data": info.name,
        "n_samples": n,
        "metrics": metrics,
    }
