"""Crafted-case tables: does every sample-quality metric rank sample sets of known quality correctly?

Toys: for every 2D toy, the true sampler, a uniform blob on the data's bounding box, a moment-matched
Gaussian, and exact collapses (one mode dropped, two modes kept, one mode kept), scored by the
exact-density toy metrics and by k-NN precision/recall/density/coverage in data space.
Images: held-out real images, noisy, blurred, single-class, independent-pixel and uniform-noise
sets of equal size, scored by FID (bootstrap s.e.), KID (jackknife s.e.), precision/recall
(k = 3, Kynkaanniemi et al.) and density/coverage (k = 5, Naeem et al.) with deepgen's features.
Also: how often KID +- 2 s.e. covers 0 for two random halves of the real digits.

    python benchmarks/crafted_cases.py                                  # toys + digits, ~1-2 min
    python benchmarks/crafted_cases.py --data-dir ../shared/data        # + MNIST (a few minutes)
    python benchmarks/crafted_cases.py --samples vae=runs/demo/vae.npy  # add a model's samples
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import RESULTS, write_result  # noqa: E402
from deepgen.data import DataSpec, load_dataset, toy2d  # noqa: E402
from deepgen.metrics.crafted import image_cases, toy_cases  # noqa: E402
from deepgen.metrics.features import extract, load_feature_network  # noqa: E402
from deepgen.metrics.fid import GaussianStats, fid_bootstrap  # noqa: E402
from deepgen.metrics.kid import kid, real_kernel_sums  # noqa: E402
from deepgen.metrics.precision_recall import precision_recall  # noqa: E402
from deepgen.metrics.toy2d import toy_sample_quality  # noqa: E402


def toy_tables(n: int) -> dict:
    out = {}
    for name in toy2d.TOY2D:
        ref = toy2d.sample(name, n, torch.Generator().manual_seed(4242))
        rows = {}
        for case, x in toy_cases(name, n, seed=1).items():
            q = toy_sample_quality(name, x)
            pr = precision_recall(ref, x, k=3)
            rows[case] = {
                k: q[k] for k in ("nll_data", "nll_data_se", "high_quality", "modes", "total_modes", "mode_kl")
            }
            rows[case].update(pr)
        out[name] = {"entropy": q["entropy"], "n": n, "rows": rows}
        print(f"toy {name} done", flush=True)
    return out


def image_table(ds, train, n: int, extra: dict[str, str], n_boot: int) -> dict:
    net = load_feature_network("deepgen-digits" if ds.info.shape[-1] == 8 else "deepgen-mnist")
    ref, _ = extract(net, train)
    sums = real_kernel_sums(ref)
    stats = GaussianStats.of(ref)
    g = torch.Generator().manual_seed(0)
    ref_n = ref[torch.randperm(len(ref), generator=g)[:n]]  # density/coverage: equal set sizes
    sets = image_cases(ds.test.x, ds.test.y, train, ds.info.levels, n)
    for label, path in extra.items():  # model samples saved by 'deepgen sample --out X.npy' (levels)
        a = torch.from_numpy(np.load(path)).float()[:n] / (ds.info.levels - 1)
        sets[label] = a.reshape(-1, *ds.info.shape)
    rows = {}
    for case, x in sets.items():
        f, _ = extract(net, x)
        fb = fid_bootstrap(
            stats if len(ref) > 20_000 else ref, f, n_boot=n_boot, generator=torch.Generator().manual_seed(1)
        )
        kd = kid(ref, f, real_sums=sums)
        pr3, pr5 = precision_recall(ref_n, f, k=3), precision_recall(ref_n, f, k=5)
        rows[case] = {
            "n": len(x),
            "fid": fb["fid"],
            "fid_se": fb["se"],
            "fid_bootstrap_bias": fb["bootstrap_bias"],
            "kid": kd["kid"],
            "kid_se": kd["se"],
            "kid_se_unbiased": kd["se_unbiased"],
            **{f"{k}_k3": v for k, v in pr3.items()},
            **{f"{k}_k5": v for k, v in pr5.items()},
        }
        print(f"  {case}: FID {fb['fid']:.2f}", flush=True)
    return {"n_reference": len(ref), "n": n, "rows": rows}


def kid_halves(feats: torch.Tensor, half: int, reps: int) -> dict:
    g = torch.Generator().manual_seed(5)
    vals, ses = [], []
    for _ in range(reps):
        p = torch.randperm(len(feats), generator=g)
        o = kid(feats[p[:half]], feats[p[half : 2 * half]])
        vals.append(o["kid"])
        ses.append(o["se"])
    v, s = torch.tensor(vals), torch.tensor(ses)
    return {
        "half": half,
        "reps": reps,
        "coverage_2se": (v.abs() <= 2 * s).double().mean().item(),
        "kid_sd": v.std().item(),
        "rms_se": s.pow(2).mean().sqrt().item(),
    }


def fmt(v, digits=3):
    if v is None:
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def markdown(res: dict) -> str:
    lines = []
    for name, t in res.get("toys", {}).items():
        lines += [
            f"\n#### {name} (n = {t['n']}, entropy H = {t['entropy']:.3f} nats)\n",
            "| case | −log p_data (nats) | high-quality | modes | mode KL | precision | recall | density | coverage |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c, r in t["rows"].items():
            modes = "n/a" if r["modes"] is None else f"{r['modes']}/{r['total_modes']}"
            nll = fmt(r["nll_data"], 2) + ("" if math.isinf(r["nll_data"]) else f" ± {r['nll_data_se']:.2f}")
            vals = [fmt(r[k]) for k in ("high_quality", "mode_kl", "precision", "recall", "density", "coverage")]
            lines.append(f"| {c} | {nll} | {vals[0]} | {modes} | " + " | ".join(vals[1:]) + " |")
    for key, t in res.get("images", {}).items():
        lines += [
            f"\n#### {key}: n = {t['n']} per row, reference {t['n_reference']:,} training images\n",
            "| set | FID ± s.e. | KID ×1e3 ± s.e. | precision k=3 | recall k=3 | precision k=5 | density k=5 "
            "| recall k=5 | coverage k=5 |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c, r in t["rows"].items():
            cells = [f"{r['fid']:.2f} ± {r['fid_se']:.2f}", f"{1e3 * r['kid']:.1f} ± {1e3 * r['kid_se']:.1f}"]
            cells += [fmt(r[k]) for k in ("precision_k3", "recall_k3", "precision_k5", "density_k5")]
            cells += [fmt(r[k]) for k in ("recall_k5", "coverage_k5")]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
    if "kid_halves" in res:
        h = res["kid_halves"]
        lines.append(
            f"\nKID of two random halves ({h['half']} + {h['half']}) of the 1,797 digits, {h['reps']} draws: "
            f"±2 s.e. covers 0 in {100 * h['coverage_2se']:.1f}%; KID's spread {1e3 * h['kid_sd']:.1f}e-3, "
            f"r.m.s. jackknife s.e. {1e3 * h['rms_se']:.1f}e-3."
        )
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None, help="MNIST IDX folder: adds the MNIST table")
    ap.add_argument("--toy-n", type=int, default=2500)
    ap.add_argument("--mnist-n", type=int, default=10_000)
    ap.add_argument("--n-boot", type=int, default=100)
    ap.add_argument("--samples", action="append", default=[], help="LABEL=FILE.npy digits samples (levels)")
    ap.add_argument("--skip-toys", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res: dict = {}
    if not args.skip_toys:
        res["toys"] = toy_tables(args.toy_n)
    ds = load_dataset(DataSpec("digits"))
    train = torch.cat([ds.train.x, ds.val.x])
    extra = dict(s.split("=", 1) for s in args.samples)
    res["images"] = {"digits": image_table(ds, train, len(ds.test.x), extra, args.n_boot)}
    allf, _ = extract(load_feature_network("deepgen-digits"), torch.cat([train, ds.test.x]))
    res["kid_halves"] = kid_halves(allf, 360, 300)
    if args.data_dir:
        mn = load_dataset(DataSpec("mnist", data_dir=args.data_dir))
        mtrain = torch.cat([mn.train.x, mn.val.x])
        res["images"]["mnist"] = image_table(mn, mtrain, args.mnist_n, {}, args.n_boot)
    settings = vars(args)
    write_result("crafted_cases", settings, res)
    md = markdown(res)
    (RESULTS / "crafted_cases.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
