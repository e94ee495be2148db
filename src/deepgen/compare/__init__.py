"""``deepgen compare``: the review's comparison table measured like-for-like on your data.

Bond-Taylor et al. (2021, TPAMI, arXiv:2103.04922) compare the families by training speed, sampling
speed, parameter count, whether the density is exact, NLL in bits/dim and FID. :func:`run_compare`
trains every requested model on the same data with the same step budget, batch size and seed,
measures those columns (plus KID and precision/recall) with the same metric code, and writes
``table.md``, ``table.csv``, ``report.html`` and ``results.json`` with a sample grid per model.
"""

from deepgen.compare.runner import CompareResult, run_compare

__all__ = ["run_compare", "CompareResult"]
