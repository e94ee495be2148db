"""deepgen anomaly: how well a trained model tells its own kind of data from anomalies.

Normal data: the run's test split (or ``--data`` with the run's options). Anomalies: the same data's
other classes (``--anomaly-classes``) or another dataset or file (``--anomalies``). Each score the
model can give (:mod:`deepgen.apps.anomaly`) is measured by AUROC, average precision and the false
positive rate at 95% true positives, and thresholded where it flags ``--fpr`` of the run's *validation*
split, as a deployed detector would be. Writes ``anomaly.json``, ``scores.csv`` and one histogram per
score (``hist_SCORE.png``).
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from deepgen.cli.common import (
    EXAMPLES_FMT,
    add_app_output_args,
    add_data_args,
    fmt,
    parse_classes,
    sample_options,
    spec_for_run,
    write_json,
)

EPILOG = """Examples:
  deepgen train realnvp --data digits --classes 0-8 --out runs/flow-not9
  deepgen anomaly runs/flow-not9 --anomaly-classes 9 --out runs/anomaly-9       # every score it offers
  deepgen anomaly runs/vae-mnist --anomalies my_scans.npy --score reconstruction --out runs/scans
  deepgen anomaly runs/ddpm-not9 --anomaly-classes 9 --score edit -s sampler=ddim -s steps=20 --out runs/ano
Scores (higher = more anomalous): nll, typicality, reconstruction, edit; 'deepgen anomaly RUN --list' shows
which a run offers.
"""


def add_parser(sub):
    p = sub.add_parser(
        "anomaly",
        help="anomaly detection with a trained model: scores, AUROC, thresholds",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Score normal data and anomalies under the model in RUN and measure how well each score "
        "separates them.",
    )
    p.add_argument("run", metavar="RUN")
    add_data_args(p, required=False)
    g = p.add_argument_group("anomalies (one of)")
    g.add_argument("--anomaly-classes", type=parse_classes, metavar="C[,C...]", help="the data's other classes")
    g.add_argument("--anomalies", metavar="DATA", help="another dataset name or file, scored whole")
    p.add_argument("--score", help="comma-separated scores (default: every score the model offers)")
    p.add_argument("--list", action="store_true", help="print the scores this run offers and exit")
    p.add_argument("--strength", type=float, default=0.3, help="edit: noise level in (0, 1] (default 0.3)")
    p.add_argument("--repeats", type=int, default=4, help="edit: draws averaged per example (default 4)")
    p.add_argument(
        "-s", "--sample-option", action="append", metavar="KEY=VALUE",
        help="edit: a sampling option of the model, e.g. -s sampler=ddim -s steps=20",
    )  # fmt: skip
    p.add_argument("--k", type=int, help="Monte Carlo samples of bound/estimate likelihoods")
    p.add_argument("--method", help="a likelihood method the model offers besides its default")
    p.add_argument("--fpr", type=float, default=0.05, help="share of normal validation data flagged (default 0.05)")
    p.add_argument("-n", type=int, default=2000, help="at most this many examples per set, seeded (default 2000)")
    add_app_output_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from deepgen.apps.anomaly import (
        SCORES,
        anomaly_scores,
        available_scores,
        detection_metrics,
        flag_rates,
        save_score_histogram,
        threshold_for,
    )
    from deepgen.data import DataSpec, check_compatible, load_dataset, load_eval_split
    from deepgen.errors import ConfigError
    from deepgen.evaluate.likelihood import subset
    from deepgen.train import load_run

    loaded = load_run(args.run, device=args.device)
    model, info = loaded.model, loaded.info
    offered = available_scores(model)
    if args.list:
        for s in offered:
            print(f"{s:15s} {SCORES[s]}")
        return 0
    if not offered:
        raise ConfigError(f"{model.name} has no density, latent space or edit capability to score anomalies with")
    scores = offered if not args.score else [s.strip() for s in args.score.split(",") if s.strip()]
    if (args.anomaly_classes is None) == (args.anomalies is None):
        raise ConfigError("give the anomalies: --anomaly-classes C (the data's other classes) or --anomalies DATA")
    spec = spec_for_run(args, loaded.data_spec)
    normal_ds = load_dataset(spec, info)
    check_compatible(info, normal_ds.info)
    if args.anomaly_classes is not None:
        overlap = set(args.anomaly_classes) & set(spec.classes or ())
        if overlap:
            raise ConfigError(f"--anomaly-classes {sorted(overlap)} are among the normal classes {spec.classes}")
        anomalous, a_info = load_eval_split(dataclasses.replace(spec, classes=args.anomaly_classes), info)
        a_name = f"{spec.name} classes {','.join(map(str, args.anomaly_classes))}"
    else:
        a_spec = DataSpec(args.anomalies, data_dir=spec.data_dir, binarize=spec.binarize, image_size=spec.image_size)
        anomalous, a_info = load_eval_split(a_spec, info)
        a_name = args.anomalies
    check_compatible(info, a_info)
    sets = {
        "normal": subset(normal_ds.test, args.n, args.seed).x,
        "anomalous": subset(anomalous, args.n, args.seed).x,
        "validation": subset(normal_ds.val, args.n, args.seed).x,
    }
    reference = subset(normal_ds.train, args.n, args.seed).x
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"{model.name} on {normal_ds.info.name}: {len(sets['normal'])} normal test examples against "
        f"{len(sets['anomalous'])} anomalies ({a_name}); threshold flags {args.fpr:.0%} of {len(sets['validation'])} "
        "normal validation examples"
    )
    results, columns = {}, {}
    print(f"{'score':15s} {'AUROC':>7s} {'AP':>7s} {'FPR@95':>7s} {'TPR':>7s} {'FPR':>7s}  (at the threshold)")
    for name in scores:
        per_set = {}
        for which, x in sets.items():
            gen = torch.Generator().manual_seed(args.seed)
            per_set[which] = anomaly_scores(
                model, x, name, reference=reference, k=args.k, method=args.method, strength=args.strength,
                repeats=args.repeats, generator=gen, options=sample_options(args),
            )  # fmt: skip
        normal, anom = per_set["normal"].values, per_set["anomalous"].values
        m = detection_metrics(normal, anom)
        thr = threshold_for(per_set["validation"].values, args.fpr)
        m["at_threshold"] = flag_rates(normal, anom, thr)
        m["label"] = per_set["normal"].label
        results[name] = m
        columns[name] = (normal, anom)
        save_score_histogram(
            normal, anom, out / f"hist_{name}.png", label=m["label"], threshold=thr,
            title=f"{model.name}: {name}, AUROC {m['auroc']:.3f}",
        )  # fmt: skip
        t = m["at_threshold"]
        print(
            f"{name:15s} {m['auroc']:7.4f} {m['average_precision']:7.4f} {m['fpr_at_95_tpr']:7.4f} "
            f"{t['tpr']:7.4f} {t['fpr']:7.4f}"
        )
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    write_json(
        out / "anomaly.json",
        {"run": args.run, "model": model.name, "normal": normal_ds.info.name, "anomalies": a_name,
         "settings": settings, "scores": results},
    )  # fmt: skip
    with open(out / "scores.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "set", *scores])
        for which, pos in (("normal", 0), ("anomalous", 1)):
            n = len(columns[scores[0]][pos])
            for i in range(n):
                w.writerow([i, which, *(fmt(float(columns[s][pos][i]), 8) for s in scores)])
    print(f"wrote {out / 'anomaly.json'}, {out / 'scores.csv'} and hist_*.png")
    return 0
