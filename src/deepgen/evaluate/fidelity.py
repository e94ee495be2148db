"""Fidelity of a fitted signal or scene: PSNR and SSIM of the model's predictions on held-out rows.

Signals and scenes are not sets of i.i.d. examples: a model of them maps rows (coordinates, or camera
rays) to values (``model.predict(x) -> (N, C)``), and it is judged on rows it did not see: a signal at
twice its native resolution, or a scene's held-out views. Images are put back together from the
rows (the data's own order) for SSIM (Wang et al. 2004), which needs at least 11 x 11 pixels.
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
    return out
