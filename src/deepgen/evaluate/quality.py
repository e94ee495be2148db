"""Sample quality: draw samples and score them against reference data, labelled.

Images: FID, KID, precision/recall (+ density/coverage) and the Inception Score with a feature
network; vectors: MMD^2 and precision/recall in data space; 2D toys: mode coverage and the
entropy floor. Reference statistics are computed once per dataset (:class:`SampleQuality`).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from deepgen.data import DataInfo, Dataset
from deepgen.data import toy2d as toy
from deepgen.errors import DeepgenError
from deepgen.evaluate.likelihood import na
from deepgen.models.base import GenerativeModel

#: Reference examples KID compares against (a seeded random subset of the reference set).
KID_REFERENCE = 10_000


def draw_samples(
    model: GenerativeModel,
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 1000,
    options: dict | None = None,
    y: torch.Tensor | None = None,
    progress=None,
    timing: dict | None = None,
) -> tuple[torch.Tensor, float]:
    """``n`` samples (CPU) and the median sampling throughput in samples/s.

    A small warm-up draw comes first; then the ``n`` samples are drawn in at least five batches, each
    timed, so ``timing`` (when given, a dict) receives the median, quartiles, min and max samples/s
    and the load average: a machine shared with other processes shows up as a wide spread.
    ``options``: the model's sampling options; ``y``: (n,) labels for a conditional model (None:
    classes in turn). ``progress(done, total)`` is called after each batch.
    """
    from deepgen.metrics.cost import load_average, spread

    dev = model.device
    opts = model.sample_options(**(options or {}))
    g = torch.Generator(device=dev).manual_seed(seed)
    batch_size = max(1, min(batch_size, -(-n // 5)))
    rates, parts = [], []
    with torch.no_grad():
        model.sample(min(8, n), generator=torch.Generator(device=dev).manual_seed(seed + 1), options=opts)
        if dev.type == "cuda":  # the warm-up's queued kernels must not count in the first timed batch
            torch.cuda.synchronize(dev)
        load0 = load_average()
        total = 0.0
        for i in range(0, n, batch_size):
            m = min(batch_size, n - i)
            yb = None if y is None else y[i : i + m]
            if yb is None and model.conditional:
                yb = (torch.arange(i, i + m) % model.info.num_classes).to(dev)
            t0 = time.perf_counter()
            parts.append(model.sample(m, generator=g, y=yb, options=opts))
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            dt = time.perf_counter() - t0
            total += dt
            rates.append(m / max(dt, 1e-9))
            if progress is not None:
                progress(i + m, n)
    loads = [v for v in (load0, load_average()) if v is not None]
    if timing is not None:
        timing.update(median=statistics.median(rates), **spread(rates), load_average=max(loads) if loads else None)
    return torch.cat(parts).cpu(), statistics.median(rates)


@dataclass
class SampleQuality:
    """Reference statistics of a dataset, computed once, to score any number of sample sets.

    Images: features from ``features`` (a shipped network name, ``inception:PATH`` or a saved
    network file; default by image shape); the reference set is the training data (train + val),
    as for FID in Heusel et al. Vectors: data space against the test split. 2D toys add metrics
    from the exact data density (-log p_data of samples, the high-quality fraction, mode coverage
    and mode KL) and the entropy floor.

    ``n``: the number of samples every row of a comparison uses, the real-data floor included
    (FID and k-NN metrics depend on it): images, the held-out test split's size (at most 10,000);
    vectors, 2,500.

    Which metrics are shown was decided by crafted cases (docs/benchmarks.md): on MNIST, k-NN
    precision and density rank blurred images, independent pixels and even uniform noise above real
    data, so they stay in the results (labelled) but not in the comparison table.
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
    n: int = 0
    max_n: int = 10_000
    ref_kid_sums: object = field(default=None, repr=False)
    kid_ref: torch.Tensor | None = field(default=None, repr=False)

    @classmethod
    def for_dataset(cls, ds: Dataset, features: str | None = None, max_reference: int = 60_000) -> SampleQuality:
        info = ds.info
        if info.is_image:  # reference: the training data, binarised as the model saw it
            ref = torch.cat([ds.train_for_evaluation(), ds.val.x])[:max_reference]
            floor = ds.test.x
        else:  # reference: the test split; the floor compares the (disjoint) training data with it
            ref, floor = ds.test.x, ds.train.x
        max_n = 10_000 if info.is_image else min(2500, len(ref))  # vectors: k-NN against this many test points
        n = min(len(floor), max_n)
        q = cls(info, ref, floor, features, n=n, max_n=max_n)
        q._setup()
        return q

    def portable(self) -> SampleQuality:
        """A copy to send to another process: image reference pixels are dropped once their
        features are computed (only the features are used from then on; 188 MB for MNIST)."""
        from dataclasses import replace

        if self.info.is_image and self.ref_feats is not None:
            return replace(self, reference=self.reference[:0])
        return self

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
        from deepgen.metrics.kid import real_kernel_sums

        self.ref_feats, _ = F.extract(self.network, self.reference)
        self.ref_stats = GaussianStats.of(self.ref_feats)
        # KID's cost is quadratic in the reference size (60,000^2 kernel entries took minutes on MNIST):
        # a fixed random 10,000 of the reference are plenty for its standard error to be dominated by n
        g = torch.Generator().manual_seed(1)
        self.kid_ref = self.ref_feats[torch.randperm(len(self.ref_feats), generator=g)[:KID_REFERENCE]]
        self.ref_kid_sums = real_kernel_sums(self.kid_ref)

    def evaluate(self, samples: torch.Tensor, seed: int = 0, progress=None) -> dict:
        """Every sample-quality metric of ``samples`` against the reference; ``progress`` a
        :class:`~deepgen.evaluate.progress.Progress` (phases "features" and "distances")."""
        from deepgen.evaluate.progress import Progress

        progress = progress or Progress(enabled=False)
        if self.info.is_image:
            return self._image_metrics(samples, seed, progress)
        with progress.phase("distances"):
            return self._vector_metrics(samples, seed)

    def data_floor(self, seed: int = 0) -> dict:
        """The metrics that ``n`` real examples disjoint from the reference get: the best a model can expect."""
        g = torch.Generator().manual_seed(seed + 7)
        idx = torch.randperm(len(self.held_out), generator=g)[: self.n or len(self.held_out)]
        return self.evaluate(self.held_out[idx], seed)

    def _image_metrics(self, samples, seed, progress) -> dict:
        from deepgen.metrics.features import extract

        if self.network is None:
            keys = ("fid", "kid", "precision", "recall", "density", "coverage", "is")
            return {m: na(m.upper(), self.reason) for m in keys}
        with progress.phase("features", len(samples), "images") as update:
            feats, logits = extract(self.network, samples)
            update(len(samples))
        with progress.phase("distances"):
            return self._image_distances(feats, logits, len(samples), seed)

    def _image_distances(self, feats, logits, n_samples, seed) -> dict:
        from deepgen.metrics.fid import fid_bootstrap
        from deepgen.metrics.inception_score import inception_score
        from deepgen.metrics.kid import kid
        from deepgen.metrics.precision_recall import precision_recall

        lab = self.feature_label
        g = torch.Generator().manual_seed(seed)
        k = kid(self.kid_ref, feats, real_sums=self.ref_kid_sums)
        # the stats of a large reference are held fixed; a small one is resampled with the samples
        ref = self.ref_stats if len(self.ref_feats) > 20_000 else self.ref_feats
        f = fid_bootstrap(ref, feats, n_boot=100, generator=g)
        n_pr = min(len(feats), len(self.ref_feats), 10_000)
        ref_pr = self.ref_feats[torch.randperm(len(self.ref_feats), generator=g)[:n_pr]]
        pr = precision_recall(ref_pr, feats[:n_pr], k=5)
        is_mean, is_std = inception_score(logits)
        cls = "classifier" if "features" in lab else ""
        n = {"n_fake": n_samples, "n_real": len(self.ref_feats)}
        knn = f"{lab}, k=5"
        return {
            "fid": {
                "value": f["fid"],
                "se": f["se"],
                "bootstrap_bias": f["bootstrap_bias"],
                "label": f"FID ({lab})",
                **n,
            },
            "kid": {
                "value": k["kid"],
                "se": k["se"],
                "label": f"KID ({lab}, jackknife s.e.)",
                **n,
                "n_real": len(self.kid_ref),
            },
            "precision": {
                "value": pr["precision"],
                "label": f"precision ({knn}; unreliable, see docs)",
                "note": "ranks blurred images and pixel noise above real MNIST (docs/benchmarks.md)",
            },
            "recall": {"value": pr["recall"], "label": f"recall ({knn})", "n": n_pr},
            "density": {
                "value": pr["density"],
                "label": f"density ({knn}; unreliable, see docs)",
                "note": "ranks blurred images and pixel noise above real MNIST (docs/benchmarks.md)",
            },
            "coverage": {"value": pr["coverage"], "label": f"coverage ({knn})", "n": n_pr},
            "is": (
                {"value": is_mean, "std": is_std, "label": f"IS ({lab.replace('features', cls).strip()})"}
                if getattr(self.network, "objective", "classify") == "classify"
                else na("IS", "self-supervised feature network: it has no classes")
            ),
        }

    def _vector_metrics(self, samples, seed) -> dict:
        from deepgen.metrics.kid import gaussian_mmd2
        from deepgen.metrics.precision_recall import precision_recall

        g = torch.Generator().manual_seed(seed)
        n = min(len(samples), len(self.reference))  # every sample counts (quality.n keeps rows equal)
        ref = self.reference[torch.randperm(len(self.reference), generator=g)[:n]]
        fake = samples[torch.randperm(len(samples), generator=g)[:n]]
        out = {
            "mmd2": {
                "value": gaussian_mmd2(ref, fake),
                "label": "MMD^2 (Gaussian kernels, data space)",
                "n": n,
            }
        }
        pr = precision_recall(ref, fake, k=5)
        out["precision"] = {"value": pr["precision"], "label": f"precision (data space, k=5, n={n})"}
        out["recall"] = {"value": pr["recall"], "label": f"recall (data space, k=5, n={n})"}
        out["coverage"] = {"value": pr["coverage"], "label": f"coverage (data space, k=5, n={n})"}
        if self.info.name in toy.TOY2D:
            out.update(toy_metrics(self.info.name, fake))
        return out


def toy_metrics(name: str, samples: torch.Tensor) -> dict:
    """Sample quality measured with the toy's exact density p_data (``deepgen.metrics.toy2d``)."""
    from deepgen.metrics.toy2d import toy_sample_quality

    q = toy_sample_quality(name, samples)
    out = {
        "nll_data": {
            "value": q["nll_data"],
            "se": q["nll_data_se"],
            "label": "-log p_data of samples (nats; fidelity: collapse onto dense regions also scores well)",
        },
        "high_quality": {
            "value": q["high_quality"],
            "label": "high-quality samples (p_data above the density 99% of real samples exceed)",
        },
    }
    if q["modes"] is None:
        reason = f"{name} has no modes"
        out["modes"] = na("modes covered", reason)
        out["mode_kl"] = na("mode KL(data || model) (nats)", reason)
    else:
        out["modes"] = {
            "value": q["modes"],
            "total": q["total_modes"],
            "label": f"modes covered (of {q['total_modes']}; >= half the share real data gets)",
        }
        out["mode_kl"] = {"value": q["mode_kl"], "label": "mode KL(data || model) (nats)"}
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
