"""deepgen cluster: label examples by the connected components of a level set of a model's density.

Works with any model that has a density of any kind (exact, bound, estimate, unnormalised); see
:mod:`deepgen.cluster` for the method. Writes ``clusters.json`` (level, sizes, the adjusted Rand
index against the data's labels when it has them), ``labels.csv`` and ``clusters.png`` (2-D: the
density with the level set's components; images: a row of examples per cluster).
"""

from __future__ import annotations

from pathlib import Path

from deepgen.cli.common import EXAMPLES_FMT, add_app_output_args, add_data_args, spec_for_run, write_json

EPILOG = """Examples:
  deepgen cluster runs/gmm-8gaussians --out runs/clusters-8g               # 2-D: grid method
  deepgen cluster runs/made-digits --keep 0.6 --split train --out runs/cl  # k-NN graph method
  deepgen cluster runs/ebm-moons --level -1.5 --assign nearest --out runs/cl
"""


def add_parser(sub):
    p = sub.add_parser(
        "cluster",
        help="cluster examples by the level sets of a model's density",
        formatter_class=EXAMPLES_FMT,
        epilog=EPILOG,
        description="Label the examples of DATA (default: the run's test split) by the connected components "
        "of {x : p(x) >= level} under the model in RUN.",
    )
    p.add_argument("run", metavar="RUN")
    add_data_args(p, required=False)
    p.add_argument("--split", choices=["test", "train"], default="test", help="which examples (default test)")
    p.add_argument("-n", type=int, default=2000, help="at most this many examples, a seeded subset (default 2000)")
    p.add_argument("--keep", type=float, default=0.8, help="fraction of examples inside the level set (default 0.8)")
    p.add_argument("--level", type=float, help="the level itself, in log-density units (overrides --keep)")
    p.add_argument("--method", choices=["auto", "grid", "knn"], default="auto", help="auto: grid for 2-D data")
    p.add_argument("--k", type=int, default=10, help="neighbours in the k-NN graph (default 10)")
    p.add_argument("--grid-size", type=int, default=200, help="grid cells per side (2-D; default 200)")
    p.add_argument("--assign", choices=["none", "nearest"], default="none", help="label points below the level")
    add_app_output_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np
    import torch

    from deepgen.cluster import level_set_clusters
    from deepgen.data import check_compatible, load_dataset
    from deepgen.errors import DeepgenError
    from deepgen.models.base import DensityKind
    from deepgen.train import load_run

    loaded = load_run(args.run, device=args.device)
    model, info = loaded.model, loaded.info
    if model.density_kind == DensityKind.NONE:
        raise DeepgenError(f"{model.name} has no density to take level sets of: {model.why_no_density()}")
    ds = load_dataset(spec_for_run(args, loaded.data_spec))
    check_compatible(info, ds.info)
    split = ds.test if args.split == "test" else ds.train
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(args.seed))[: args.n].sort().values
    x = split.x[idx]
    y = None if split.y is None or info.kind != "examples" else split.y[idx]
    dev = loaded.device
    model.prepare_likelihood(x.to(dev))

    def log_density(v):
        return model.log_likelihood(v.to(dev)).values

    res = level_set_clusters(
        log_density, x, keep=args.keep, level=args.level, method=args.method, grid_size=args.grid_size,
        k=args.k, assign=args.assign,
    )  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"run": str(loaded.path), "model": model.name, "density": model.density_kind.value, "n": len(x)}
    summary.update(res.summary())
    if y is not None:
        from sklearn.metrics import adjusted_rand_score

        mask = res.labels >= 0
        summary["ari_vs_labels_clustered"] = float(adjusted_rand_score(y[mask].numpy(), res.labels[mask]))
        summary["ari_vs_labels_all"] = float(adjusted_rand_score(y.numpy(), res.labels))
    write_json(out / "clusters.json", summary)
    rows = np.stack([idx.numpy(), res.labels, res.log_density], 1)
    np.savetxt(
        out / "labels.csv",
        rows,
        delimiter=",",
        header="index,cluster,log_density",
        comments="",
        fmt=["%d", "%d", "%.6g"],
    )
    png = plot_clusters(res, x, info, out / "clusters.png", f"{model.name}: {res.n_clusters} clusters")
    print(
        f"{model.name} ({model.density_kind.value} density): {res.n_clusters} clusters of {len(x)} "
        f"{args.split} examples at level {res.level:.4g} (keep {args.keep:g}); sizes {res.sizes[:10]}"
        + ("" if y is None else f"; ARI vs labels {summary['ari_vs_labels_all']:.3f}")
    )
    print(f"wrote {out / 'clusters.json'}, {out / 'labels.csv'}" + (f", {png}" if png else ""))
    return 0


def plot_clusters(res, x, info, path, title):
    """2-D: the log-density, the level set coloured by component, the points; images: a row per cluster."""
    import numpy as np

    from deepgen.plots import _figure, save_image_grid

    if res.grid is not None:
        xs, ys, g_lp, comp = res.grid
        fig = _figure(6, 5)
        ax = fig.add_subplot()
        ax.contour(xs, ys, g_lp, levels=[res.level], colors="k", linewidths=1)
        shown = np.ma.masked_less(comp.astype(float), 0)
        ax.pcolormesh(xs, ys, shown, cmap="tab10", alpha=0.35, shading="auto", vmin=0, vmax=9)
        pts = x.reshape(len(x), -1).numpy()
        out = res.labels < 0
        ax.scatter(pts[out, 0], pts[out, 1], c="0.6", s=3, label="below the level")
        ax.scatter(pts[~out, 0], pts[~out, 1], c=res.labels[~out] % 10, cmap="tab10", vmin=0, vmax=9, s=4)
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(title + f" (level {res.level:.3g})")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        return path
    if info.is_image and res.n_clusters:
        import torch

        per, rows = 10, []
        for c in range(min(res.n_clusters, 10)):
            members = np.flatnonzero(res.labels == c)[:per]
            row = x[torch.as_tensor(members)]
            pad = torch.ones(per - len(row), *x.shape[1:])
            rows.append(torch.cat([row, pad]))
        save_image_grid(torch.cat(rows), path, nrow=per)
        return path
    return None
