"""FID/KID/precision-recall with deepgen-mnist features on real MNIST sets, and the cost of FID.

Rows: the MNIST test set against the training set (the floor a perfect model would get with 10k
samples), then corrupted copies of the test set, which a sensible metric must rank as worse:
Gaussian noise, blur, dynamic binarisation, and a single class only. Finally, the wall time to
compute FID for 10,000 MNIST-sized images (feature extraction + statistics + distance, against
precomputed training statistics), median of ``--repeats`` runs.

    python benchmarks/fid_mnist.py --data-dir ../shared/data       # ~1-2 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402
from deepgen.data import DataSpec, load_dataset  # noqa: E402
from deepgen.metrics.features import extract, load_feature_network  # noqa: E402
from deepgen.metrics.fid import GaussianStats, fid_from_stats  # noqa: E402
from deepgen.metrics.kid import kernel_inception_distance  # noqa: E402
from deepgen.metrics.precision_recall import precision_recall  # noqa: E402


def corruptions(test, labels, g):
    def blur(x, sigma):
        k = torch.arange(-3, 4, dtype=torch.float32)
        w = torch.exp(-k * k / (2 * sigma * sigma))
        w = (w / w.sum()).view(1, 1, 1, 7)
        x = F.conv2d(F.pad(x, (3, 3, 0, 0), mode="replicate"), w)
        return F.conv2d(F.pad(x, (0, 0, 3, 3), mode="replicate"), w.transpose(2, 3))

    yield "test set (clean)", test
    yield "Gaussian noise, std 0.1", (test + 0.1 * torch.randn(test.shape, generator=g)).clamp(0, 1)
    yield "Gaussian noise, std 0.3", (test + 0.3 * torch.randn(test.shape, generator=g)).clamp(0, 1)
    yield "Gaussian blur, sigma 1", blur(test, 1.0)
    yield "Gaussian blur, sigma 2", blur(test, 2.0)
    yield "dynamically binarised", torch.bernoulli(test, generator=g)
    yield "single class (digit 1)", test[labels == 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("DEEPGEN_DATA"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(DataSpec("mnist", data_dir=args.data_dir))
    train = torch.cat([ds.train.x, ds.val.x])
    net = load_feature_network("deepgen-mnist")
    t0 = time.perf_counter()
    ref_feats, _ = extract(net, train)
    ref = GaussianStats.of(ref_feats)
    ref_seconds = time.perf_counter() - t0
    g = torch.Generator().manual_seed(0)
    rows = []
    for name, x in corruptions(ds.test.x, ds.test.y, g):
        feats, _ = extract(net, x)
        kid, kid_std = kernel_inception_distance(ref_feats, feats, generator=torch.Generator().manual_seed(0))
        sub = torch.randperm(len(ref_feats), generator=torch.Generator().manual_seed(0))[:10_000]
        pr = precision_recall(ref_feats[sub], feats)
        rows.append(
            {
                "set": name,
                "n": len(x),
                "fid": fid_from_stats(ref, GaussianStats.of(feats)),
                "kid": kid,
                "kid_std": kid_std,
                "precision": pr["precision"],
                "recall": pr["recall"],
            }
        )
        r = rows[-1]
        print(
            f"{name:28s} n={r['n']:5d}  FID {r['fid']:8.3f}  KID {r['kid']:.4f} +- {r['kid_std']:.4f}  "
            f"P {r['precision']:.3f}  R {r['recall']:.3f}"
        )
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        feats, _ = extract(net, ds.test.x)
        fid_from_stats(ref, GaussianStats.of(feats))
        times.append(time.perf_counter() - t0)
    timing = {
        "fid_10k_seconds_median": statistics.median(times),
        "fid_10k_seconds_all": times,
        "reference_stats_60k_seconds": ref_seconds,
    }
    print(
        f"FID of 10,000 images against precomputed training statistics: {timing['fid_10k_seconds_median']:.2f} s "
        f"(median of {args.repeats}, {args.threads} threads); training statistics of 60k images: {ref_seconds:.1f} s"
    )
    settings = {**vars(args), "features": "deepgen-mnist", "reference": "MNIST train (60,000)"}
    print(f"wrote {write_result('fid_mnist', settings, {'rows': rows, 'timing': timing}, args.out)}")


if __name__ == "__main__":
    main()
