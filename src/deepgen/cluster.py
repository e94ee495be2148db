"""Clustering by level sets of a density: a cluster is a connected component of {x : p(x) >= lambda}.

This is the lectures' definition (after Hartigan 1975, "Clustering algorithms", and the level-set
trees of Chaudhuri & Dasgupta 2010, NeurIPS). It needs only a log-density up to a constant, so any
deepgen model with a density works: exact, a bound, an estimate, or unnormalised (an EBM's -E(x)),
and the level is chosen relative to the data's own densities, so an unknown log Z does not matter.

* **Level.** ``keep`` q (default 0.8): lambda is the (1 - q) quantile of the log-densities of the
  points being clustered, so the fraction q of them lies in the super-level set. Points below it
  are not in any cluster (label -1); ``assign="nearest"`` gives each the label of its nearest
  clustered point.
* **2-D data** (``method="grid"``): the log-density on an n x n grid over the points' range, the
  cells at or above lambda, their 8-connected components (scipy.ndimage.label); a point gets its
  cell's component. The components are regions, so the plot shows them as areas.
* **Any dimension** (``method="knn"``): the points at or above lambda, joined to their ``k``
  nearest such points; a cluster is a connected component of that graph. An edge is kept only if
  the density at its midpoint is also >= lambda (a segment that leaves the super-level set does not
  join two clusters), which makes the result follow the density rather than the sample spacing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from deepgen.errors import ConfigError

LogDensity = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Clusters:
    """Result of :func:`level_set_clusters`.

    labels: (N,) int64, a component index per point, -1 below the level (unless assigned).
    level: lambda, in the log-density's units; log_density: (N,) the points' log-densities.
    sizes: points per cluster inside the level set (largest first; before any ``assign``).
    grid: for ``method="grid"``: (xs, ys, log-density (n, n), component map (n, n): -1 outside the
        level set and in its regions that hold none of the points).
    """

    labels: np.ndarray
    level: float
    log_density: np.ndarray
    method: str
    keep: float
    sizes: list[int] = field(default_factory=list)
    grid: tuple | None = None

    @property
    def n_clusters(self) -> int:
        return len(self.sizes)

    def summary(self) -> dict:
        return {
            "clusters": self.n_clusters,
            "sizes": self.sizes,
            "unassigned": int((self.labels < 0).sum()),
            "level": self.level,
            "keep": self.keep,
            "method": self.method,
        }


def _batched(log_density: LogDensity, x: torch.Tensor, batch: int = 4096) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([log_density(x[i : i + batch]).double().cpu() for i in range(0, len(x), batch)]).numpy()


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, list[int], dict[int, int]]:
    """Components renumbered 0.. by size (largest first); -1 stays -1. Also returns old -> new."""
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    remap = {int(old): new for new, old in enumerate(order)}
    out = np.array([remap.get(int(v), -1) for v in labels], dtype=np.int64)
    return out, [int(c) for c in np.sort(counts)[::-1]], remap


def level_set_clusters(
    log_density: LogDensity,
    x: torch.Tensor,
    *,
    keep: float = 0.8,
    level: float | None = None,
    method: str = "auto",
    grid_size: int = 200,
    k: int = 10,
    assign: str = "none",
) -> Clusters:
    """Cluster points ``x`` (N, ...) by the connected components of a super-level set of a density.

    Args:
        log_density: ``f(x) -> (B,)`` log-density up to an additive constant (any density kind).
        x: the points, (N, *shape); 2-D points (N, 2) may use the grid method.
        keep: the fraction of points inside the level set when ``level`` is None (0 < keep <= 1).
        level: lambda itself, in log-density units (overrides ``keep``).
        method: ``grid`` (2-D only), ``knn``, or ``auto`` (grid for 2-D points, else knn).
        grid_size: cells per side of the grid method.
        k: neighbours per point of the k-NN graph.
        assign: ``none`` (points below the level get -1) or ``nearest`` (the nearest clustered point's label).
    """
    if not 0 < keep <= 1:
        raise ConfigError(f"keep must be in (0, 1], got {keep}")
    if method not in ("auto", "grid", "knn") or assign not in ("none", "nearest"):
        raise ConfigError(f"method must be auto, grid or knn and assign none or nearest; got {method}, {assign}")
    flat = x.reshape(len(x), -1)
    if method == "auto":
        method = "grid" if flat.shape[1] == 2 else "knn"
    if method == "grid" and flat.shape[1] != 2:
        raise ConfigError(f"the grid method needs 2-D points; these have {flat.shape[1]} dimensions (use knn)")
    lp = _batched(log_density, x)
    lam = float(np.quantile(lp, 1 - keep)) if level is None else float(level)
    grid = None
    if method == "grid":
        labels, grid = _grid_components(log_density, flat, lp, lam, grid_size, x.dtype)
    else:
        labels = _knn_components(log_density, x, lp, lam, k)
    labels, sizes, remap = _relabel(labels)
    if grid is not None:  # the grid's components in the points' numbering; regions without points: -1
        xs, ys, g_lp, comp = grid
        shown = np.full_like(comp, -1)
        for old, new in remap.items():
            shown[comp == old] = new
        grid = (xs, ys, g_lp, shown)
    if assign == "nearest" and (labels >= 0).any():
        inside = np.flatnonzero(labels >= 0)
        outside = np.flatnonzero(labels < 0)
        if len(outside):
            d = torch.cdist(flat[outside].double(), flat[inside].double())
            labels[outside] = labels[inside[d.argmin(1).numpy()]]
    return Clusters(labels, lam, lp, method, keep, sizes, grid)


def _grid_components(log_density, flat, lp, lam, n, dtype):
    from scipy import ndimage

    pts = flat.double().numpy()
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.05 * (hi - lo)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], n)
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    cells = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=dtype)
    g_lp = _batched(log_density, cells).reshape(n, n)
    comp, _ = ndimage.label(g_lp >= lam, structure=np.ones((3, 3)))
    comp = comp.astype(np.int64) - 1  # -1 outside the level set
    ix = np.clip(np.rint((pts[:, 0] - xs[0]) / (xs[1] - xs[0])).astype(int), 0, n - 1)
    iy = np.clip(np.rint((pts[:, 1] - ys[0]) / (ys[1] - ys[0])).astype(int), 0, n - 1)
    labels = np.where(lp >= lam, comp[iy, ix], -1)  # a point's own density decides, its cell the component
    return labels, (xs, ys, g_lp, comp)


def _knn_components(log_density, x, lp, lam, k):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    inside = np.flatnonzero(lp >= lam)
    labels = np.full(len(x), -1, dtype=np.int64)
    if len(inside) == 0:
        return labels
    pts = x[inside]
    flat = pts.reshape(len(pts), -1).double()
    kk = min(k, len(inside) - 1)
    if kk < 1:
        labels[inside] = 0
        return labels
    rows, cols = [], []
    for i in range(0, len(flat), 2048):
        d = torch.cdist(flat[i : i + 2048], flat)
        d[torch.arange(d.shape[0]), torch.arange(i, i + d.shape[0])] = float("inf")
        nn = d.topk(kk, largest=False).indices
        rows.append(torch.arange(i, i + d.shape[0]).repeat_interleave(kk))
        cols.append(nn.reshape(-1))
    r, c = torch.cat(rows), torch.cat(cols)
    mid = (pts[r] + pts[c]) / 2  # an edge counts only if its midpoint stays in the level set
    ok = _batched(log_density, mid) >= lam
    r, c = r.numpy()[ok], c.numpy()[ok]
    graph = coo_matrix((np.ones(len(r)), (r, c)), shape=(len(inside), len(inside)))
    _, comp = connected_components(graph, directed=False)
    labels[inside] = comp
    return labels
