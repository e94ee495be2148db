"""Anomaly detection on the 8x8 digits, class by class: every model and score, AUROC and average precision.

Two protocols (``--protocol``), for each class c (``--classes``, default all ten) and each model
(``--models``):

* ``held-out`` (default): the model is trained on the other nine classes (about 1,050 images after
  the validation hold-out; ``deepgen train MODEL --data digits --classes ...``); in the test split
  the 36 images of class c are the anomalies, the other 324 are normal. A model must find a digit
  it has never seen unlikely while finding unseen writing of the digits it knows likely: the harder
  protocol.
* ``one-class``: trained on class c only (about 117 images); class c's test images are normal, the
  other nine classes anomalous: the one-class protocol of the deep anomaly-detection literature
  (e.g. Ruff et al. 2018, Deep SVDD, on MNIST). On these digits it is nearly saturated (AUROC > 0.99
  for every model on class 0).

Each score the model is asked for (:data:`SCORES`) ranks the test split. Reported: AUROC and average
precision per class, and their mean over classes. Likelihoods use each model's evaluation budget
(``deepgen eval``'s default: the VAE's importance-sampled estimate, not its ELBO).

Each model's training defaults (``train_defaults``), ``--steps`` steps of batch ``--batch-size``,
seed 0, one thread. The diffusion model's ``edit`` score noises each test image to ``--strength``
and denoises it with DDIM (``--edit-steps`` steps over the full schedule, so about strength x that
many network evaluations), averaging the squared error of ``--repeats`` draws.

    OMP_NUM_THREADS=1 python benchmarks/anomaly_digits.py   # -> benchmarks/results/anomaly_digits_held-out.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402
from deepgen.apps.anomaly import anomaly_scores, detection_metrics  # noqa: E402
from deepgen.data import DataSpec, load_dataset  # noqa: E402
from deepgen.registry import get_model_class  # noqa: E402
from deepgen.train import TrainConfig, Trainer  # noqa: E402
from deepgen.train.run import build_model  # noqa: E402

#: model -> the scores measured (ddpm's nll would be its T-step bound: left out for time)
SCORES = {
    "independent": ["nll", "typicality"],
    "made": ["nll", "typicality"],
    "realnvp": ["nll", "typicality"],
    "maf": ["nll", "typicality"],
    "vae": ["nll", "typicality", "reconstruction"],
    "ddpm": ["edit"],
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", choices=["held-out", "one-class"], default="held-out")
    ap.add_argument("--classes", type=lambda t: [int(c) for c in t.split(",")], default=list(range(10)))
    ap.add_argument("--models", type=lambda t: t.split(","), default=list(SCORES))
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--strength", type=float, default=0.3)
    ap.add_argument("--edit-steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    full = load_dataset(DataSpec("digits"))
    x_test, y_test = full.test.x, full.test.y
    rows = []
    settings = {**vars(args), "threads": 1, "scores": {m: SCORES[m] for m in args.models}}
    for c in args.classes:
        if args.protocol == "one-class":
            ds = load_dataset(DataSpec("digits", classes=(c,)))
            normal, anomalous = x_test[y_test == c], x_test[y_test != c]
        else:
            ds = load_dataset(DataSpec("digits", classes=tuple(k for k in range(10) if k != c)))
            normal, anomalous = x_test[y_test != c], x_test[y_test == c]
        for name in args.models:
            cls = get_model_class(name)
            model = build_model(name, ds.info, seed=0)
            train = {**cls.train_defaults_for(ds.info, {}), "steps": args.steps, "batch_size": args.batch_size}
            train = {k: v for k, v in train.items() if k in TrainConfig.__dataclass_fields__}
            cfg = TrainConfig(**{**train, "seed": 0, "progress": False, "eval_every": 0, "ckpt_every": 0, "threads": 1})
            t0 = time.perf_counter()
            Trainer(model, ds, cfg, tempfile.mkdtemp(), plots=False, quiet=True).fit()
            train_s = time.perf_counter() - t0
            for score in SCORES[name]:
                t0 = time.perf_counter()
                kw = {"reference": ds.train.x}
                if score == "edit":
                    opts = {"sampler": "ddim", "steps": args.edit_steps}
                    kw.update(strength=args.strength, repeats=args.repeats, options=opts)
                vals = []
                for x in (normal, anomalous):
                    kw["generator"] = torch.Generator().manual_seed(0)
                    vals.append(anomaly_scores(model, x, score, **kw).values)
                m = detection_metrics(*vals)
                row = {"class": c, "model": name, "score": score, "train_s": train_s,
                       "score_s": time.perf_counter() - t0, **m}  # fmt: skip
                rows.append(row)
                print(f"class {c} {name:12s} {score:15s} AUROC {m['auroc']:.4f}  AP {m['average_precision']:.4f}")
        write_result(f"anomaly_digits_{args.protocol}", settings, {"rows": rows, "summary": summary(rows)}, args.out)
    for key, s in summary(rows).items():
        print(f"{key:28s} mean AUROC {s['auroc_mean']:.4f} (sd {s['auroc_sd']:.4f}, {s['n']} classes)")


def summary(rows):
    out = {}
    for key in dict.fromkeys((r["model"], r["score"]) for r in rows):
        au = [r["auroc"] for r in rows if (r["model"], r["score"]) == key]
        ap = [r["average_precision"] for r in rows if (r["model"], r["score"]) == key]
        out[f"{key[0]}/{key[1]}"] = {
            "auroc_mean": float(np.mean(au)),
            "auroc_sd": float(np.std(au)),
            "ap_mean": float(np.mean(ap)),
            "n": len(au),
        }
    return out


if __name__ == "__main__":
    main()
