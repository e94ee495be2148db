"""How wide the digits are drawn in the two domains of ``domains:digits-mnist`` (docs/benchmarks.md 16.3).

For classes 1, 0 and 8: the mean fraction of the digit box's width and height that has ink, for
sklearn's 8 x 8 digits (ink: above 4 of 16 levels, the whole 8 x 8 box) and for the first 3,000
MNIST test images (ink: above 0.25, MNIST's central 20 x 20 box, rows and columns 4..23).

    python benchmarks/domain_proportions.py --data-dir ../shared/data   # prints the table

``--judge`` adds a second table: how often the deepgen-digits classifier (the judge of CycleGAN's
MNIST -> digits direction, reading through ``digits_view``) recognises the first 2,000 MNIST test
images after hand-made, class-preserving changes of their proportions, stroke width and contrast:
the ceiling of translators that only make such changes.

    python benchmarks/domain_proportions.py --data-dir ../shared/data --judge
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from deepgen.data import DataSpec, load_dataset
from deepgen.data.domains import digits_view
from deepgen.metrics.features import accuracy, extract, load_feature_network


def extent(img: np.ndarray, threshold: float) -> tuple[float, float]:
    """(width, height) of the inked part of ``img`` as fractions of its box."""
    cols = np.where(img.max(0) > threshold)[0]
    rows = np.where(img.max(1) > threshold)[0]
    return (cols.max() - cols.min() + 1) / img.shape[1], (rows.max() - rows.min() + 1) / img.shape[0]


def refit(img: torch.Tensor, aspect: float | None) -> torch.Tensor:
    """(1, 28, 28) MNIST image -> its inked box (above 0.25) rescaled to the full 20-pixel height of
    MNIST's digit box, ``aspect`` times its own width (capped at 20; None: stretched to 20 x 20), centred."""
    a = img[0]
    cols = torch.where(a.max(0).values > 0.25)[0]
    rows = torch.where(a.max(1).values > 0.25)[0]
    crop = a[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1][None, None]
    h, w = crop.shape[-2:]
    width = 20 if aspect is None else max(1, min(20, round(w * 20 / h * aspect)))
    box = F.interpolate(crop, size=(20, width), mode="bilinear", align_corners=False)[0, 0]
    out = torch.zeros(28, 28)
    left = 4 + (20 - width) // 2
    out[4:24, left : left + width] = box
    return out[None]


def judge_table(mnist) -> None:
    """Print the deepgen-digits judge's accuracy on transformed MNIST test images."""
    torch.set_num_threads(1)
    x, y = mnist.test.x[:2000].float(), mnist.test.y[:2000]
    x = x / x.max()
    judge = load_feature_network("deepgen-digits")
    rows = {"MNIST as it is": x}
    for aspect in (1.0, 1.3, 1.6, 2.0):
        rows[f"box height filled, width x{aspect}"] = torch.stack([refit(im, aspect) for im in x])
    rows["box filled (20 x 20)"] = torch.stack([refit(im, None) for im in x])
    rows["strokes dilated 3 x 3"] = F.max_pool2d(x, 3, 1, 1)
    rows["intensity ** 0.5 (bolder)"] = x**0.5
    rows["intensity ** 2 (fainter)"] = x**2
    rows["width x1.3 and dilated"] = F.max_pool2d(rows["box height filled, width x1.3"], 3, 1, 1)
    print("\ntransform of 2,000 MNIST test images         deepgen-digits accuracy")
    for name, images in rows.items():
        print(f"{name:44s} {accuracy(judge, digits_view(images), y):.1%}")
    _, logits = extract(judge, digits_view(x))
    pred = logits.argmax(1)
    print("\nuntranslated MNIST by class: accuracy, most frequent wrong reading")
    for c in range(10):
        p = pred[y == c]
        wrong = torch.bincount(p[p != c], minlength=10).argmax().item()
        print(f"{c}: {(p == c).double().mean().item():.0%}, read as {wrong}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("DEEPGEN_DATA"))
    ap.add_argument("--judge", action="store_true", help="also print the digits judge on transformed MNIST")
    args = ap.parse_args()
    digits = load_digits()
    mnist = load_dataset(DataSpec("mnist", data_dir=args.data_dir))
    xm, ym = mnist.test.x[:3000, 0].numpy(), mnist.test.y[:3000].numpy()
    print("class  digits width  digits height  mnist width  mnist height")
    for c in (1, 0, 8):
        d = np.array([extent(im, 4) for im in digits.images[digits.target == c]]).mean(0)
        m = np.array([extent(im[4:24, 4:24], 0.25) for im in xm[ym == c]]).mean(0)
        print(f"{c:5d}  {d[0]:12.2f}  {d[1]:13.2f}  {m[0]:11.2f}  {m[1]:12.2f}")
    if args.judge:
        judge_table(mnist)


if __name__ == "__main__":
    main()
