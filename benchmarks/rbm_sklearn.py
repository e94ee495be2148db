"""deepgen's RBM against scikit-learn's BernoulliRBM on the 8x8 digits: fit time, and likelihoods.

Both fit 64 hidden units with PCD-1 (persistent chains as many as the batch), batch 10, learning
rate 0.06, 20 passes over the 1,437 training digits, no momentum and no weight decay, which is
scikit-learn's algorithm. The digits are thresholded at 8/16 (``--binarize threshold``), so that the
test log-likelihood is a probability mass of data the model was trained on; scikit-learn would also
take pixels / 16 as fractional inputs, for the same cost per update. deepgen trains through its
``Trainer`` (the path ``deepgen train`` uses), with the RBM's default of 100 updates per fused call
(``--steps-per-call``; 1 measures the engine's one-update-per-call path). Timing alternates the two
fits (A B A B ...), one thread each.

Afterwards both models' test log-likelihoods are estimated by AIS in deepgen (64 visible and 64
hidden units are too many to enumerate; scikit-learn's weights are loaded into a deepgen RBM),
beside scikit-learn's pseudo-likelihood (``score_samples``), which is the only number it gives.

    python benchmarks/rbm_sklearn.py --reps 5      # about a minute
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import race, write_result  # noqa: E402
from deepgen.data import DataSpec, load_dataset  # noqa: E402
from deepgen.models.energy import RBM, RBMConfig  # noqa: E402
from deepgen.train import TrainConfig, Trainer  # noqa: E402

HIDDEN, BATCH, LR, EPOCHS = 64, 10, 0.06, 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument(
        "--batch-sizes",
        type=lambda t: [int(b) for b in t.split(",")],
        default=[BATCH, 100],
        help="the issue's batch 10, and a larger one where the arithmetic, not the per-update overhead, counts",
    )
    ap.add_argument(
        "--steps-per-call",
        type=int,
        default=RBM.train_defaults["steps_per_call"],
        help="updates per fused call (deepgen train rbm's default; 1: one update per call, the engine's per-step path)",
    )
    ap.add_argument(
        "--eager",
        action="store_true",
        help="run the fused updates as plain Python (what a torch without TorchScript gets)",
    )
    ap.add_argument("--ais-steps", type=int, default=10_000)
    ap.add_argument("--ais-chains", type=int, default=100)
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.eager:
        from deepgen.models.energy import rbm_kernel

        rbm_kernel._compiled = rbm_kernel.cd_updates  # kernel() then returns the uncompiled function
    from sklearn.neural_network import BernoulliRBM

    ds = load_dataset(DataSpec("digits", binarize="threshold"))
    x = ds.train.x.flatten(1)
    x_np = x.numpy().astype(np.float32)
    tmp = tempfile.mkdtemp()
    fitted = {"deepgen": [], "sklearn": []}  # one fit per call at batch 10, seeds 0, 1, 2, ...

    def fits(batch: int, store: bool):
        steps = math.ceil(len(x) / batch) * EPOCHS
        calls = {"deepgen": 0, "sklearn": 0}

        def ours():
            seed = calls["deepgen"]
            calls["deepgen"] += 1
            torch.manual_seed(seed)
            m = RBM(ds.info, RBMConfig(hidden=HIDDEN, persistent=True, chains=batch, momentum=0.0))
            cfg = TrainConfig(
                steps=steps, batch_size=batch, lr=LR, weight_decay=0.0, seed=seed, progress=False,
                eval_every=0, log_every=500, ckpt_every=0, threads=1, steps_per_call=args.steps_per_call,
            )  # fmt: skip
            Trainer(m, ds, cfg, tmp, plots=False, quiet=True, overwrite=True).fit()
            if store:
                fitted["deepgen"].append(m)

        def theirs():
            seed = calls["sklearn"]
            calls["sklearn"] += 1
            rbm = BernoulliRBM(
                n_components=HIDDEN, batch_size=batch, learning_rate=LR, n_iter=EPOCHS, random_state=seed
            )
            rbm.fit(x_np)
            if store:
                fitted["sklearn"].append(rbm)

        return ours, theirs

    timing = {}
    for batch in args.batch_sizes:
        t = race(*fits(batch, batch == BATCH), reps=args.reps, warmup=1, per_block=1, peer="sklearn")
        t = {k.replace("_ms", "_s"): (v if "ratio" in k else _seconds(v)) for k, v in t.items()}
        timing[f"batch_{batch}"] = t
        print(
            f"fit, 20 epochs, batch {batch}: deepgen {t['deepgen_s']:.2f} s, scikit-learn {t['sklearn_s']:.2f} s, "
            f"ratio {t['ratio']:.3f} (pairs: median {t['pair_ratio_median']:.3f}, "
            f"IQR {t['pair_ratio_q1_q3'][0]:.3f}-{t['pair_ratio_q1_q3'][1]:.3f})"
        )
    test = ds.test.x
    likelihoods = {"deepgen": [], "sklearn": []}
    for seed, (m, sk) in enumerate(zip(fitted["deepgen"], fitted["sklearn"])):
        m.config = RBMConfig(**{**m.config.__dict__, "ais_steps": args.ais_steps, "ais_chains": args.ais_chains})
        for name, model in (("deepgen", m), ("sklearn", as_deepgen(sk, ds, m.config))):
            model.eval()
            model.prepare_likelihood(test, generator=torch.Generator().manual_seed(seed))
            ll = model.log_likelihood(test)
            row = {
                "seed": seed,
                "nll": -ll.values.double().mean().item(),
                "sem": ll.values.double().std().item() / math.sqrt(len(test)),
                "log_z_stderr": ll.shared_stderr,
                "method": ll.method,
                "kind": ll.kind.value,
            }
            if name == "sklearn":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    row["pseudo_log_likelihood"] = float(np.mean(sk.score_samples(test.flatten(1).numpy())))
            likelihoods[name].append(row)
            print(
                f"{name:8s} seed {seed}: test NLL {row['nll']:.3f} nats +- {row['sem']:.3f} "
                f"(log Z s.e. {row['log_z_stderr']:.3f})"
            )
    summary = {}
    for name, rows in likelihoods.items():
        v = [r["nll"] for r in rows]
        summary[name] = {
            "nll_mean": float(np.mean(v)),
            "nll_sd_over_seeds": float(np.std(v, ddof=1)) if len(v) > 1 else None,
        }
        print(f"{name:8s} mean over {len(v)} seeds: {np.mean(v):.3f} nats (sd {summary[name]['nll_sd_over_seeds']})")
    pl = [r["pseudo_log_likelihood"] for r in likelihoods["sklearn"]]
    print(f"scikit-learn's own number, its pseudo-log-likelihood (x 64 pixels): {np.mean(pl):.3f}")
    likelihoods["summary"] = summary
    settings = {
        "hidden": HIDDEN,
        "batch": BATCH,
        "lr": LR,
        "epochs": EPOCHS,
        "steps_at_batch_10": math.ceil(len(x) / BATCH) * EPOCHS,
        **vars(args),
        "data": "digits thresholded at 8/16 (1,437 train, 360 test)",
        "threads": 1,
    }
    out = write_result("rbm_sklearn", settings, {"timing": timing, "likelihoods": likelihoods}, args.out)
    print(f"wrote {out}")


def as_deepgen(sk, ds, config: RBMConfig) -> RBM:
    """scikit-learn's fitted BernoulliRBM as a deepgen RBM (same energy), with the AIS base rates of the data."""
    twin = RBM(ds.info, config)
    with torch.no_grad():
        twin.initialize(ds.train.x)  # base_bias: the base-rate model for AIS
        twin.W.copy_(torch.from_numpy(sk.components_.T.copy()))
        twin.b.copy_(torch.from_numpy(sk.intercept_visible_.copy()))
        twin.c.copy_(torch.from_numpy(sk.intercept_hidden_.copy()))
    return twin


def _seconds(v):
    return [t / 1e3 for t in v] if isinstance(v, list) else v / 1e3


if __name__ == "__main__":
    main()
