"""How wide the digits are drawn in the two domains of ``domains:digits-mnist`` (docs/benchmarks.md 16.3).

For classes 1, 0 and 8: the mean fraction of the digit box's width and height that has ink, for
sklearn's 8 x 8 digits (ink: above 4 of 16 levels, the whole 8 x 8 box) and for the first 3,000
MNIST test images (ink: above 0.25, MNIST's central 20 x 20 box, rows and columns 4..23).

    python benchmarks/domain_proportions.py --data-dir ../shared/data   # prints the table
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from sklearn.datasets import load_digits

from deepgen.data import DataSpec, load_dataset


def extent(img: np.ndarray, threshold: float) -> tuple[float, float]:
    """(width, height) of the inked part of ``img`` as fractions of its box."""
    cols = np.where(img.max(0) > threshold)[0]
    rows = np.where(img.max(1) > threshold)[0]
    return (cols.max() - cols.min() + 1) / img.shape[1], (rows.max() - rows.min() + 1) / img.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("DEEPGEN_DATA"))
    args = ap.parse_args()
    digits = load_digits()
    mnist = load_dataset(DataSpec("mnist", data_dir=args.data_dir))
    xm, ym = mnist.test.x[:3000, 0].numpy(), mnist.test.y[:3000].numpy()
    print("class  digits width  digits height  mnist width  mnist height")
    for c in (1, 0, 8):
        d = np.array([extent(im, 4) for im in digits.images[digits.target == c]]).mean(0)
        m = np.array([extent(im[4:24, 4:24], 0.25) for im in xm[ym == c]]).mean(0)
        print(f"{c:5d}  {d[0]:12.2f}  {d[1]:13.2f}  {m[0]:11.2f}  {m[1]:12.2f}")


if __name__ == "__main__":
    main()
