"""Generative classifiers on the 8x8 digits: class-conditional density models classify by Bayes' rule.

Each model is trained class-conditionally (``-o class_conditional=true``) on the 1,294 training
digits with its training defaults, ``--steps`` steps of batch 64, seed 0, one thread; then
``deepgen classify`` (``deepgen.apps.classify``) scores each of the 360 test digits under every
class and takes argmax_y log p(x | y) + log p(y). Beside them, two scikit-learn references on the
same pixels: Gaussian naive Bayes (the simplest generative classifier: independent Gaussian pixels
per class) and multinomial logistic regression (discriminative).

    OMP_NUM_THREADS=1 python benchmarks/classify_digits.py   # -> benchmarks/results/classify_digits.json
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import write_result  # noqa: E402
from deepgen.apps.classify import class_posteriors, class_prior, classification_metrics  # noqa: E402
from deepgen.data import DataSpec, load_dataset  # noqa: E402
from deepgen.registry import get_model_class  # noqa: E402
from deepgen.train import TrainConfig, Trainer  # noqa: E402
from deepgen.train.run import build_model  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=lambda t: t.split(","), default=["maf", "realnvp", "gated-pixelcnn"])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(DataSpec("digits"))
    prior = class_prior(ds.train.y, 10)
    rows = []
    for name in args.models:
        cls = get_model_class(name)
        model = build_model(name, ds.info, {"class_conditional": True}, seed=0)
        train = {**cls.train_defaults_for(ds.info, {}), "steps": args.steps, "batch_size": 64}
        train = {k: v for k, v in train.items() if k in TrainConfig.__dataclass_fields__}
        cfg = TrainConfig(**{**train, "seed": 0, "progress": False, "eval_every": 0, "ckpt_every": 0, "threads": 1})
        t0 = time.perf_counter()
        Trainer(model, ds, cfg, tempfile.mkdtemp(), plots=False, quiet=True).fit()
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        m = classification_metrics(class_posteriors(model, ds.test.x, prior), ds.test.y)
        rows.append({"model": name, "density": model.density_kind.value, "params": model.num_parameters,
                     "train_s": train_s, "classify_s": time.perf_counter() - t0, **m})  # fmt: skip
        print(f"{name:15s} accuracy {m['accuracy']:.4f}  log p(y|x) {m['mean_log_prob_true_class']:.4f}  "
              f"ECE {m['expected_calibration_error']:.4f}  ({train_s:.0f} s)")  # fmt: skip
        write_result("classify_digits", vars(args), {"rows": rows}, args.out)
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB

    xtr, xte = ds.train.x.flatten(1).numpy(), ds.test.x.flatten(1).numpy()
    for name, clf in (
        ("sklearn GaussianNB", GaussianNB()),
        ("sklearn LogisticRegression", LogisticRegression(max_iter=2000)),
    ):
        clf.fit(xtr, ds.train.y.numpy())
        logp = torch.from_numpy(clf.predict_log_proba(xte)).double().clamp_min(-1e4)
        m = classification_metrics(logp, ds.test.y)
        rows.append({"model": name, **m})
        print(f"{name:15s} accuracy {m['accuracy']:.4f}  log p(y|x) {m['mean_log_prob_true_class']:.4f}  "
              f"ECE {m['expected_calibration_error']:.4f}")  # fmt: skip
    write_result("classify_digits", vars(args), {"rows": rows}, args.out)


if __name__ == "__main__":
    main()
