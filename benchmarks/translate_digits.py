"""MNIST -> digits translation by models of the digits domain alone (SDEdit, reconstruction), judged as
CycleGAN's MNIST -> digits direction is (docs/benchmarks.md 16.3).

The first ``--n`` MNIST test images are read as 8 x 8 digits through
:func:`deepgen.data.domains.digits_view` (the 20 x 20 digit box averaged down, 17 levels): the view
through which the deepgen-digits classifier judges CycleGAN's translations, so the "untranslated"
row here is the same floor as CycleGAN's ``untranslated_source`` (74.9%). Each model (``--models``,
trained on sklearn's digits with its defaults for ``--steps`` steps, seed 0, one thread; ``--cache``
keeps the weights, and shares them with ``inverse_digits.py --cache``) translates them by every
method it offers (:mod:`deepgen.apps.translate`): ``edit`` (SDEdit) at each of ``--strengths`` with
DDIM over ``--edit-steps`` steps, ``reconstruct`` (decode(encode(x))). Reported for each: the
deepgen-digits classifier's label agreement with the MNIST label, and FID/KID (deepgen-digits
features) against the digits' reference set.

    OMP_NUM_THREADS=1 python benchmarks/translate_digits.py --data-dir ../shared/data --cache runs/inv
    # -> benchmarks/results/translate_digits.json (and --grid PREFIX: a PNG of sources and translations)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from _common import trained_with_defaults, write_result  # noqa: E402
from deepgen.apps.translate import available_methods, translate, translation_scores  # noqa: E402
from deepgen.data import DataSpec, load_dataset  # noqa: E402
from deepgen.data.domains import digits_view  # noqa: E402
from deepgen.metrics.features import load_feature_network  # noqa: E402
from deepgen.plots import save_image_grid  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("DEEPGEN_DATA"))
    ap.add_argument("--models", type=lambda t: t.split(","), default=["ddpm", "vae"])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--strengths", type=lambda t: [float(v) for v in t.split(",")], default=[0.1, 0.2, 0.3, 0.5])
    ap.add_argument("--edit-steps", type=int, default=50, help="DDIM steps over the full schedule")
    ap.add_argument("--cache", help="directory for trained weights, reused when model, steps and seed match")
    ap.add_argument("--grid", help="write a PNG of sources and translations under this prefix")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(1)
    digits = load_dataset(DataSpec("digits"))
    mnist = load_dataset(DataSpec("mnist", data_dir=args.data_dir))
    source, labels = digits_view(mnist.test.x[: args.n]), mnist.test.y[: args.n]
    judge = load_feature_network("deepgen-digits")
    rows = []

    def record(model, method, setting, translated, seconds, train_s=None):
        m = translation_scores(translated, source, labels, judge, digits, features="deepgen-digits")
        rows.append({"model": model, "method": method, "setting": setting, "train_s": train_s, "seconds": seconds, **m})
        print(
            f"{model:8s} {method:12s} {setting:14s} labels {m['label_agreement']:.3f} "
            f"(untranslated {m['untranslated_source']:.3f})  FID {m['fid']['value']:6.2f}  ({seconds:.0f} s)",
            flush=True,
        )
        return translated

    shown = [record("(none)", "untranslated", "", source, 0.0)[:12]]
    for name in args.models:
        model, train_s = trained_with_defaults(name, digits, args.steps, args.cache)
        for method in available_methods(model):
            settings = args.strengths if method == "edit" else [None]
            for s in settings:
                g = torch.Generator().manual_seed(0)
                t0 = time.perf_counter()
                kw = {"strength": s, "options": {"sampler": "ddim", "steps": args.edit_steps}} if s is not None else {}
                r = translate(model, source, method, generator=g, **kw)
                setting = f"strength {s:g}" if s is not None else ""
                shown.append(record(name, method, setting, r, time.perf_counter() - t0, train_s)[:12])
    if args.grid:
        save_image_grid(torch.cat(shown), f"{args.grid}_translate_mnist_to_digits.png", nrow=12)
    write_result("translate_digits", vars(args), {"rows": rows}, args.out)


if __name__ == "__main__":
    main()
