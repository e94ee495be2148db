"""Fidelity of a fitted signal or scene: PSNR and SSIM of the model's predictions on held-out rows.

Signals and scenes are not sets of i.i.d. examples: a model of them maps rows (coordinates, or camera
rays) to values (``model.predict(x) -> (N, C)``), and it is judged on rows it did not see: a signal at
twice its native resolution, or a scene's held-out views. Images are put back together from the
rows (the data's own order) for SSIM (Wang et al. 2004), which needs at least 11 x 11 pixels.

A scene with an exact renderer (deepgen's synthetic scenes) is also judged on *novel* views: the
model's ``sample`` renders an orbit of cameras at its default sampling options (elevation 30
degrees, between the training ring's 20 and 35), and the renderer gives the truth from the same
cameras (``psnr_novel``).
"""

from __future__ import annotations

import torch

from deepgen.data import Dataset
from deepgen.evaluate.likelihood import na
from deepgen.metrics.image_quality import mean_psnr_db, ssim
from deepgen.models.base import GenerativeModel


def predict_rows(model: GenerativeModel, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """``model.predict`` over all rows of ``x`` in batches, on the CPU."""
    with torch.no_grad():
        return torch.cat(
            [model.predict(x[i : i + batch_size].to(model.device)).cpu() for i in range(0, len(x), batch_size)]
        )


def held_out_images(ds: Dataset, rows: torch.Tensor) -> torch.Tensor | None:
    """Rows of the held-out split as images (M, C, h, w), or None when they do not form 2D images."""
    info = ds.info
    grid = tuple(info.grid or ())
    if len(grid) != 2:
        return None
    c = rows.shape[1]
    if info.kind == "signal":  # the held-out split is the whole signal at a finer, square-scaled grid
        factor = round((len(rows) / (grid[0] * grid[1])) ** 0.5)
        h, w = grid[0] * factor, grid[1] * factor
        if h * w != len(rows):
            return None
        return rows.T.reshape(1, c, h, w)
    h, w = grid  # scenes: held-out views at the native size, one after another
    if len(rows) % (h * w):
        return None
    return rows.reshape(-1, h, w, c).permute(0, 3, 1, 2)


def fidelity_metrics(model: GenerativeModel, ds: Dataset) -> dict:
    """PSNR (dB, values in [0, 1]) and SSIM of ``model.predict`` on the held-out split."""
    what = "twice the native resolution" if ds.info.kind == "signal" else "held-out views"
    if not hasattr(model, "predict"):
        reason = f"{model.name} does not predict values at coordinates or rays (no predict method)"
        return {"psnr": na("PSNR (dB)", reason), "ssim": na("SSIM", reason)}
    split = ds.test
    pred = predict_rows(model, split.x)
    target = split.y[:, : ds.info.channels].float()  # a signal's rows also carry its derivatives
    out = {
        "psnr": {
            "value": mean_psnr_db(pred.clamp(0, 1)[:, :, None, None], target[:, :, None, None]),
            "label": f"PSNR (dB, {what}, values in [0, 1])",
            "n": len(target),
        }
    }
    a, b = held_out_images(ds, pred.clamp(0, 1)), held_out_images(ds, target)
    if a is None or min(a.shape[-2:]) < 11:
        out["ssim"] = na("SSIM", "needs 2D images of at least 11 x 11 pixels")
    else:
        out["ssim"] = {"value": ssim(a, b).mean().item(), "label": f"SSIM ({what}, 11x11 Gaussian window)"}
    novel = novel_views(model, ds)
    if novel is not None:
        views, truth = novel
        out["psnr_novel"] = {
            "value": mean_psnr_db(views, truth),
            "label": f"PSNR (dB, {len(views)} novel views on an orbit at the sampling options, exact truth)",
            "n": len(views),
        }
    return out


def novel_views(model: GenerativeModel, ds: Dataset, n: int = 8, **options) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``n`` novel views from ``model.sample`` and the exact renderings from the same cameras, both
    ``(n, 3, h, w)`` on the CPU; None unless the data are a scene with a ground-truth renderer."""
    from deepgen.data.scenes import orbit_poses

    scene = ds.container
    if ds.info.kind != "scene" or getattr(scene, "render", None) is None:
        return None
    opts = model.sample_options(**options)
    needed = ("azimuth", "elevation", "radius", "size")
    if not all(hasattr(opts, k) for k in needed):
        return None
    size = opts.size or ds.info.grid[0]
    with torch.no_grad():
        views = model.sample(n, **options).cpu().clamp(0, 1)
        truth = scene.render(orbit_poses(n, opts.azimuth, opts.elevation, opts.radius), (size, size))
    return views, truth.clamp(0, 1)
