"""deepgen classify: a class-conditional density model as a classifier, by Bayes' rule.

Scores every test example under each class, log p(x | y), adds the training split's class prior and
normalises (:mod:`deepgen.apps.classify`). Writes ``classify.json`` (accuracy, mean log-probability
of the true class, calibration error, confusion matrix), ``predictions.csv`` and ``confusion.png``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from deepgen.cli.common import EXAMPLES_FMT, add_app_output_args, add_data_args, spec_for_run, write_json

EPILOG = """Examples:
  deepgen train maf --data digits -o class_conditional=true --out runs/maf-cond
  deepgen classify runs/maf-cond --out runs/maf-cond/classify          # the test split
  deepgen classify runs/ddpm-cond --k 100 -n 500 --out runs/ddpm-cond/classify   # through its bound
"""


def add_parser(sub):
    p = sub.add_parser(
        "classify",
        help="classify with a class-conditional density model (Bayes' rule)",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Classify the examples of DATA (default: the run's test split) by argmax_y "
        "log p(x | y) + log p(y) under the class-conditional model in RUN.",
    )
    p.add_argument("run", metavar="RUN")
    add_data_args(p, required=False)
    p.add_argument("-n", type=int, help="at most this many examples, a seeded subset (default: all)")
    p.add_argument("--k", type=int, help="Monte Carlo samples of bound/estimate likelihoods")
    p.add_argument("--method", help="a likelihood method the model offers besides its default")
    p.add_argument("--batch-size", type=int, default=256)
    add_app_output_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from deepgen.apps.classify import check_classifier, class_posteriors, class_prior, classification_metrics
    from deepgen.data import check_compatible, load_dataset
    from deepgen.errors import DataError
    from deepgen.evaluate.likelihood import subset
    from deepgen.train import load_run

    loaded = load_run(args.run, device=args.device)
    model, info = loaded.model, loaded.info
    check_classifier(model)
    spec = spec_for_run(args, loaded.data_spec)
    ds = load_dataset(spec, info)
    check_compatible(info, ds.info)
    if ds.test.y is None or ds.train.y is None:
        raise DataError(f"{spec.name}: classification needs labelled examples")
    test = subset(ds.test, args.n, args.seed) if args.n else ds.test
    log_prior = class_prior(ds.train.y, info.num_classes)
    log_post = class_posteriors(
        model, test.x, log_prior, k=args.k, method=args.method, batch_size=args.batch_size, seed=args.seed
    )
    m = classification_metrics(log_post, test.y)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    write_json(
        out / "classify.json",
        {"run": args.run, "model": model.name, "data": ds.info.name, "density": model.density_kind.value,
         "settings": settings, "log_prior": log_prior.tolist(), **m},
    )  # fmt: skip
    with open(out / "predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "label", "predicted", *(f"log_p_y{c}" for c in range(info.num_classes))])
        for i, (lab, row) in enumerate(zip(test.y.tolist(), log_post.tolist())):
            w.writerow([i, lab, max(range(len(row)), key=row.__getitem__), *(f"{v:.6f}" for v in row)])
    save_confusion(m["confusion"], out / "confusion.png", f"{model.name}: accuracy {m['accuracy']:.1%}")
    print(
        f"{model.name} on {m['n']} examples of {ds.info.name}: accuracy {m['accuracy']:.2%}, "
        f"mean log p(true class | x) {m['mean_log_prob_true_class']:.4f} nats, "
        f"calibration error {m['expected_calibration_error']:.4f} (log p(x | y): {model.density_kind.value})"
    )
    print(f"wrote {out / 'classify.json'}, predictions.csv and confusion.png")
    return 0


def save_confusion(confusion, path, title: str) -> Path:
    import numpy as np

    from deepgen.plots import _figure

    cm = np.asarray(confusion)
    fig = _figure(4.8, 4.2)
    ax = fig.add_subplot()
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > cm.max() / 2 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_xticks(range(len(cm)))
    ax.set_yticks(range(len(cm)))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return Path(path)
