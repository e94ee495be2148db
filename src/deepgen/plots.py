"""Pictures a person can look at: image grids (own code, Pillow only), loss curves, 2D density maps.

Matplotlib is used through ``Figure``/``FigureCanvasAgg`` directly, so deepgen never touches the
global pyplot state of a user's session.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch


def image_grid(
    x: torch.Tensor | np.ndarray, nrow: int | None = None, pad: int = 1, pad_value: float = 1.0
) -> np.ndarray:
    """Tile images (N, C, H, W) with values in [0, 1] into one uint8 array (H', W', C) (C = 1 or 3)."""
    x = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images (N, 1|3, H, W), got shape {x.shape}")
    n, c, h, w = x.shape
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol = int(math.ceil(n / nrow))
    grid = np.full((c, pad + ncol * (h + pad), pad + nrow * (w + pad)), pad_value, np.float32)
    for i in range(n):
        r, q = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = x[i]
    return (np.clip(grid, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)


def save_image_grid(x, path: str | Path, nrow: int | None = None, min_size: int = 28) -> Path:
    """Write a PNG grid of images in [0, 1]; tiny images are enlarged (nearest) to ``min_size`` px."""
    from PIL import Image

    x = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    scale = max(1, int(math.ceil(min_size / x.shape[-1])))
    if scale > 1:
        x = torch.nn.functional.interpolate(x.float(), scale_factor=scale, mode="nearest")
    arr = image_grid(x, nrow, pad=max(1, scale // 2))
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def sample_view(info) -> str:
    """How samples of this data are shown, asked of the data kind first and the shape second.

    ``"images"`` (image examples; 2D signals and scene renderings), ``"curves"`` (1D signals),
    ``"points2d"`` (2D vectors: a density map with samples) or ``"scatter"`` (other vectors: the
    first two dimensions).
    """
    kind = getattr(info, "kind", "examples")
    if kind in ("signal", "scene"):
        return "images" if len(info.grid or ()) == 2 else "curves"
    if info.is_image:
        return "images"
    return "points2d" if info.dim == 2 else "scatter"


def _figure(w=6.0, h=4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


#: Logged keys that are not loss components (throughput, learning rate, wall time, bookkeeping).
_NOT_LOSSES = {"step", "split", "examples_per_s", "lr", "time", "loss"}


def loss_components(train: list[dict]) -> list[str]:
    """The separately logged loss terms: ``*_loss`` keys (a GAN's discriminator and generator
    losses, not their sum), else the total ``loss``."""
    keys = [k for k in train[0] if k.endswith("_loss") and k not in _NOT_LOSSES]
    return keys or ["loss"]


def plot_loss_curve(metrics_path: str | Path, out: str | Path, units: str = "nats") -> Path | None:
    """Each training loss component against step, and validation metrics (when logged) beside them.

    ``units``: what the losses are measured in (the model's ``loss_units``), written on the axis.
    """
    recs = read_metrics(metrics_path)
    train = [r for r in recs if r.get("split") == "train"]
    if not train:
        return None
    val = [r for r in recs if r.get("split") == "val"]
    val_key = next((k for k in ("bpd", "nll", "neg_energy") if any(k in r for r in val)), None)
    fig = _figure(11 if val_key else 7, 4.2)
    ax = fig.add_subplot(1, 2 if val_key else 1, 1)
    for i, k in enumerate(loss_components(train)):
        pts = [(r["step"], r[k]) for r in train if k in r]
        ax.plot(*zip(*pts), label=k.replace("_", " "), color=f"C{i}")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"training loss ({units})")
    ax.set_title("training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if val_key:
        ax2 = fig.add_subplot(1, 2, 2)
        pts = [(r["step"], r[val_key]) for r in val if val_key in r]
        ax2.plot(*zip(*pts), "o-", color="C3")
        unit = {"bpd": "bits/dim", "nll": "nats", "neg_energy": "mean -E(x), unnormalised"}[val_key]
        ax2.set_xlabel("training step")
        ax2.set_ylabel(f"validation {val_key.replace('_', ' ')} ({unit})")
        ax2.set_title("held-out validation")
        ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    return Path(out)


def robust_vmax(d: np.ndarray, q: float = 0.995) -> float:
    """Upper end of a density map's colour scale: the ``q`` quantile of its values, so that a single
    Monte Carlo spike cannot turn the rest of the map black."""
    v = float(np.quantile(d[np.isfinite(d)], q)) if np.isfinite(d).any() else 1.0
    return v if v > 0 else float(np.nanmax(d)) or 1.0


def plot_bounds(x: torch.Tensor, margin: float = 0.1) -> tuple[float, float, float, float]:
    """A square window around 2D points (0.5%..99.5% quantiles plus a margin)."""
    lo = torch.quantile(x.float(), 0.005, dim=0)
    hi = torch.quantile(x.float(), 0.995, dim=0)
    c, half = (lo + hi) / 2, ((hi - lo).max() / 2) * (1 + margin) + 1e-3
    return (c[0] - half).item(), (c[0] + half).item(), (c[1] - half).item(), (c[1] + half).item()


@torch.no_grad()
def density_grid(model, bounds, n: int = 150) -> tuple[np.ndarray, str] | None:
    """exp(log-likelihood) of a 2D model on an n x n grid, or None when the model has no density."""
    from deepgen.errors import NoDensityError

    x0, x1, y0, y1 = bounds
    n = min(n, model.density_grid_max)
    method = model.density_plot_method
    xs, ys = torch.linspace(x0, x1, n), torch.linspace(y0, y1, n)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    dev = model.device
    try:
        from deepgen.evaluate import default_k

        k = default_k(model, None)  # latent-variable models: an importance-sampled estimate, not a noisy ELBO
        k = None if k is None else min(k, 32)
        step = 4096 if k is None else 512
        kw = {"method": method} if method else {}
        vals = [model.log_likelihood(pts[i : i + step].to(dev), k=k, **kw) for i in range(0, len(pts), step)]
    except NoDensityError:
        return None
    lp = torch.cat([v.values for v in vals]).cpu().double()
    return torch.exp(lp).view(n, n).numpy(), vals[0].kind.value


def plot_2d(
    model,
    data: torch.Tensor | None,
    out: str | Path,
    n_samples: int = 2000,
    generator=None,
    title: str | None = None,
    samples: torch.Tensor | None = None,
    options: dict | None = None,
) -> Path:
    """Density heat-map (when the model has one) with model samples overlaid, beside the data.

    ``data`` None (e.g. ``deepgen sample`` without the run's data): only the model's panel, framed
    by its samples. ``samples``: plot these instead of drawing ``n_samples`` with ``options``.
    """
    if samples is None:
        samples = model.sample(n_samples, generator=generator, **(options or {}))
    samples = samples.cpu()
    bounds = plot_bounds(data if data is not None else samples)
    dens = density_grid(model, bounds)
    if data is not None:
        fig = _figure(10, 5)
        ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        d = data[:n_samples].cpu()
        ax1.scatter(d[:, 0], d[:, 1], s=2, alpha=0.5, color="k")
        ax1.set_title("data")
        axes = (ax1, ax2)
    else:
        fig = _figure(5.5, 5)
        ax2 = fig.add_subplot(1, 1, 1)
        axes = (ax2,)
    if dens is not None:
        ax2.imshow(
            dens[0], origin="lower", extent=bounds, cmap="viridis", aspect="equal", vmin=0, vmax=robust_vmax(dens[0])
        )
        ax2.set_title(f"model density ({dens[1]}) + samples")
    else:
        ax2.set_title("model samples (no density)")
    ax2.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5, color="w" if dens is not None else "C3")
    for ax in axes:
        ax.set_xlim(bounds[0], bounds[1])
        ax.set_ylim(bounds[2], bounds[3])
        ax.set_aspect("equal")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out)
    return Path(out)


def plot_density_only(model, bounds, out: str | Path, title: str = "", options: dict | None = None) -> Path | None:
    """Just the density heat-map of a 2D model (for side-by-side comparison reports); a model
    without a density shows a histogram of 5,000 samples drawn with sampling ``options``."""
    dens = density_grid(model, bounds)
    fig = _figure(4, 4)
    ax = fig.add_subplot(1, 1, 1)
    if dens is None:
        g = torch.Generator(device=model.device).manual_seed(0)
        samples = model.sample(5000, generator=g, **(options or {})).cpu().numpy()
        ax.hist2d(samples[:, 0], samples[:, 1], bins=100, range=[bounds[:2], bounds[2:]], cmap="viridis")
        ax.set_title(f"{title}: samples (no density)", fontsize=9)
    else:
        ax.imshow(
            dens[0], origin="lower", extent=bounds, cmap="viridis", aspect="equal", vmin=0, vmax=robust_vmax(dens[0])
        )
        ax.set_title(f"{title}: density ({dens[1]})", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out)
    return Path(out)


def plot_real_2d(name: str, data: torch.Tensor, bounds, out: str | Path) -> Path:
    """The data's exact density (2D toys: ``deepgen.metrics.toy2d_density``) with held-out points
    over it, or the points alone, framed like :func:`plot_density_only` for side-by-side reports."""
    fig = _figure(4, 4)
    ax = fig.add_subplot(1, 1, 1)
    try:
        from deepgen.metrics.toy2d_density import log_density

        x0, x1, y0, y1 = bounds
        gx, gy = torch.meshgrid(torch.linspace(x0, x1, 150), torch.linspace(y0, y1, 150), indexing="xy")
        d = torch.exp(log_density(name, torch.stack([gx.reshape(-1), gy.reshape(-1)], 1).double()))
        d = d.view(150, 150).numpy()
        ax.imshow(d, origin="lower", extent=bounds, cmap="viridis", aspect="equal", vmin=0, vmax=robust_vmax(d))
        ax.set_title("real data: exact density", fontsize=9)
    except (KeyError, ValueError, ImportError):
        pts = data[:5000].cpu().numpy()
        ax.hist2d(pts[:, 0], pts[:, 1], bins=100, range=[bounds[:2], bounds[2:]], cmap="viridis")
        ax.set_title("real data (held out)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out)
    return Path(out)


def save_samples(
    model,
    path: str | Path,
    n: int = 64,
    seed: int = 0,
    data: torch.Tensor | None = None,
    options: dict | None = None,
    samples: torch.Tensor | None = None,
) -> Path:
    """Write a PNG of model samples: an image grid, or a 2D scatter/density plot.

    Draws ``n`` samples with sampling ``options`` (or plots the given ``samples``).
    """
    g = torch.Generator(device=model.device).manual_seed(seed)
    info = model.info
    opts = options or {}
    view = sample_view(info)
    if view == "images":
        x = samples if samples is not None else model.sample(n, generator=g, **opts)
        if getattr(info, "kind", "examples") in ("signal", "scene"):  # values in [0, 1] by convention
            x = x.clamp(0, 1)
        elif not info.is_discrete:  # continuous images: the data's own units, stretched to [0, 1] for display
            raw = torch.from_numpy(info.to_raw(x)).float()
            x = (raw - raw.min()) / (raw.max() - raw.min()).clamp_min(1e-12)
        return save_image_grid(x, path)
    if view == "points2d":
        return plot_2d(model, data, path, generator=g, samples=samples, options=opts)
    if view == "curves":
        return plot_curves(samples if samples is not None else model.sample(min(n, 8), generator=g, **opts), path)
    x = (samples if samples is not None else model.sample(max(n, 1000), generator=g, **opts)).cpu().flatten(1)
    d = None if data is None else data[:1000].cpu().flatten(1)
    fig = _figure(5, 5)
    ax = fig.add_subplot(1, 1, 1)
    if info.dim == 1:
        if d is not None:
            ax.hist(d[:, 0].numpy(), bins=50, density=True, alpha=0.5, color="k", label="data")
        ax.hist(x[:, 0].numpy(), bins=50, density=True, alpha=0.5, color="C3", label="samples")
        ax.set_xlabel("x (model space)")
    else:
        if d is not None:
            ax.scatter(d[:, 0], d[:, 1], s=3, alpha=0.4, color="k", label="data")
        ax.scatter(x[:, 0], x[:, 1], s=3, alpha=0.4, color="C3", label="samples")
        ax.set_xlabel("dim 0")
        ax.set_ylabel("dim 1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_curves(x: torch.Tensor, path: str | Path) -> Path:
    """1D signals (N, C, L): one line per channel of each sample, against the coordinate in [-1, 1]."""
    x = x.detach().cpu().float()
    t = (2 * torch.arange(x.shape[-1]) + 1) / x.shape[-1] - 1  # pixel centres, as deepgen.data.signals
    fig = _figure(7, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    for i in range(len(x)):
        for c in range(x.shape[1]):
            ax.plot(t.numpy(), x[i, c].numpy(), lw=1, alpha=0.8)
    ax.set_xlabel("coordinate")
    ax.set_ylabel("value")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


@torch.no_grad()
def save_translations(model, dataset, path: str | Path, n: int = 8) -> Path:
    """Rows: test examples of A, their translations to B and back to A; then of B, to A and back."""
    dev = model.device
    a = dataset.container.a.test.x[:n].to(dev)
    b = dataset.container.b.test.x[:n].to(dev)
    ab = model.translate(a, direction="a2b")
    ba = model.translate(b, direction="b2a")
    rows = [a, ab, model.translate(ab, direction="b2a"), b, ba, model.translate(ba, direction="a2b")]
    return save_image_grid(torch.cat([r.cpu() for r in rows]), path, nrow=len(a))


def save_scene_views(model, dataset, path: str | Path, n: int = 8, **options) -> Path | None:
    """Novel views beside the truth: the exact renderer's views (top) and the model's (bottom), from
    the same orbit of cameras, each model view labelled with its PSNR. None without a renderer."""
    from deepgen.evaluate.fidelity import novel_views
    from deepgen.metrics.image_quality import mean_psnr_db

    pair = novel_views(model, dataset, n, **options)
    if pair is None:
        return None
    views, truth = pair
    fig = _figure(1.3 * n, 3.0)
    for i in range(n):
        for row, (img, name) in enumerate([(truth[i], "truth"), (views[i], model.name)]):
            ax = fig.add_subplot(2, n, row * n + i + 1)
            ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(name, fontsize=8)
            if row:  # beneath the model's view: its PSNR against the truth above it
                ax.set_xlabel(f"{mean_psnr_db(views[i : i + 1], truth[i : i + 1]):.1f} dB", fontsize=7)
    fig.suptitle(
        f"novel views (elevation {model.sample_options(**options).elevation:g} deg) beside the truth", fontsize=8
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def write_run_plots(out: str | Path, model, dataset, options: dict | None = None, seed: int = 0) -> dict[str, str]:
    """loss.png and samples.png (2D data: density map with samples) for a finished run; samples
    are drawn with sampling ``options`` (default: the model's) from ``seed``."""
    out = Path(out)
    paths = {}
    p = plot_loss_curve(out / "metrics.jsonl", out / "loss.png", getattr(model, "loss_units", "nats"))
    if p:
        paths["loss"] = str(p)
    model.eval()
    try:
        data = dataset.test.x if dataset is not None else None
        if not model.samples_from_noise and dataset is not None:  # a translator: a grid of translations
            paths["samples"] = str(save_translations(model, dataset, out / "samples.png"))
        else:
            paths["samples"] = str(save_samples(model, out / "samples.png", seed=seed, data=data, options=options))
        if dataset is not None and getattr(dataset.info, "kind", "") == "scene":
            p = save_scene_views(model, dataset, out / "views.png")
            if p:
                paths["views"] = str(p)
    finally:
        model.train()
    return paths
