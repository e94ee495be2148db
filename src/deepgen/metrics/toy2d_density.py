"""Exact log densities and differential entropies of the 2D toy distributions in :mod:`deepgen.data.toy2d`.

``log_density(name, x)`` returns log p(x) in **nats** (natural log of a density with respect to
Lebesgue measure on R^2, in the toys' raw units), float64, shape (N,), for points x of shape (N, 2).
``entropy(name)`` returns the shipped differential entropy H = -E[log p(X)] (nats) from
``toy2d_entropy.json`` (``ENTROPY_FILE``), recomputed by ``benchmarks/toy_entropy.py``. H is the floor
for a model's expected test NLL in nats on fresh data of that toy: no density q has
E_p[-log q(X)] < H (Gibbs' inequality), so a test NLL well below H means a bug or an over-fit test set.

Each density follows the generative process in ``toy2d.py`` exactly (all constants as written there,
e.g. 1.414 and 2.828, not sqrt(2) and 2 sqrt(2)):

* ``8gaussians``, ``25gaussians``: equal-weight Gaussian mixtures, in closed form (log-sum-exp).
* ``checkerboard``: uniform, density 1/32 on the 8 dark squares of side 2 (area 32), -inf elsewhere.
  The support is taken as the *closed* squares, so points on a square's edge (a null set, but float32
  rounding of samples can land exactly on one) get 1/32 rather than -inf.
* ``circles``: radius R in {3, 1.5} with probability 1/2, uniform angle, isotropic Gaussian noise
  s = 0.24. The angle integral is closed form (a 2D Rice density):
  p_R(x) = exp(-(|x| - R)^2 / (2 s^2)) I0e(R |x| / s^2) / (2 pi s^2), with I0e the scaled Bessel I0.
* ``moons``, ``swissroll``: a curve c(t) with t uniform, plus isotropic Gaussian noise (0.2 for both
  after scaling): p(x) = E_t N(x; c(t), s^2 I), integrated over t by composite Gauss-Legendre
  quadrature (8 nodes per panel, panels of equal arc length <= 0.5 s along the curve).
* ``2spirals``: t = 3 pi sqrt(U) (density 2 t / (3 pi)^2 on [0, 3 pi]), sign +-1, curve
  c(t) = +-(-t cos t, t sin t) / 3, then a uniform jitter on the square [0, 1/6)^2 (the 0.5 * U[0, 1)^2
  of the code divided by 3; it is *not* mirrored by the sign), then N(0, 0.1^2 I). The jitter square
  convolved with the Gaussian factorises into two 1D box-Gaussian kernels
  k(z) = 6 [Phi(z / 0.1) - Phi((z - 1/6) / 0.1)] (evaluated in log space with ``log_ndtr``); the curve
  parameter t is integrated by the same composite Gauss-Legendre rule (panels of arc length <= 0.05).
* ``pinwheel``: no additive noise, so there is nothing to integrate: arm k (probability 1/5) is the
  image of f ~ N((1, 0), diag(0.3^2, 0.1^2)) under x = 2 R(2 pi k / 5) R(a) f with a = 0.25 exp(f1),
  and its density is the change of variables p_k(x) = sum over preimages f of N(f) / (4 |1 - a f2|)
  (det d(R(a) f)/df = 1 - a f2). In polar coordinates of f the map keeps the radius rho = |x|/2 and
  sends the angle phi to psi = phi + 0.25 exp(rho cos phi), so the preimages are the roots of a 1D
  equation on one circle. For rho < rho* = 1.69551 that circle map is strictly increasing: exactly one
  preimage, found by bisection to ~1e-14 rad. For rho >= rho* it folds (det <= 0 on a latent region of
  probability 1.4e-9, but 1% of samples have rho >= rho*, so which root is taken matters): the two
  fold angles split the circle into an increasing and a decreasing piece, and *every* root on both
  pieces is found by bisection and summed (at most the 64 per piece nearest the Gaussian's mode; more
  exist only for rho > 7.4, where log p < -200). On the fold curves themselves the density is
  infinite (a caustic of measure zero, never hit in practice). Beyond |x| = 50 (log p < -3000) roots
  are searched on the circle rho = 25 instead, so log p there is finite but only a rough value.

Accuracy (checked when this module was written; ``benchmarks/toy_entropy.py`` recomputes H):
closed forms are exact to float64 rounding (circles also agrees with 1D quadrature to 1e-13).
The quadrature rules agree with rules of 4x more panels and 2x more nodes per panel to 1e-11 in log p
wherever log p is within 60 nats of its maximum, and to 1e-4 everywhere on [-6, 6]^2 (where log p
goes down to -1800); pruning far panels changes nothing (bit-identical to the dense sum on a grid),
and brute-force Monte Carlo over the latent variables agrees within its error (~3e-3). Pinwheel
agrees with an independent brute-force root scan to 1e-9. Every density integrates to 1 within 1e-6
on a grid, and histograms of 32-64 million samples from ``toy2d.sample`` match the densities' bin
masses (chi-square p > 0.05 for every toy).

The shipped entropies are Monte Carlo means of -log p over fresh samples (stderr <= 0.003 nats), except
``checkerboard`` (log 32, exact) and ``25gaussians`` (log 25 + 1 + log(2 pi sigma^2), sigma = 0.05/2.828,
exact up to the components' overlap, which is below e^-4000: they are 200 sigma apart).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import torch

from deepgen.data import toy2d
from deepgen.data.toy2d import TOY2D
from deepgen.errors import DataError, UnknownNameError

ENTROPY_FILE = Path(__file__).with_name("toy2d_entropy.json")
NAMES: tuple[str, ...] = tuple(TOY2D)

LOG_2PI = math.log(2 * math.pi)
_CHUNK_ELEMS = 1 << 20  # ~1M float64 per temporary (8 MB): bounds the memory of every chunked step
_CHUNK_POINTS = 1 << 16  # log_density handles this many points at a time


# --------------------------------------------------------------------------- closed-form mixtures


def _gaussian_mixture(x: torch.Tensor, centers: torch.Tensor, std: float) -> torch.Tensor:
    """log of the equal-weight mixture of N(center, std^2 I) in 2D."""
    centers = centers.to(x)
    log_norm = -LOG_2PI - 2 * math.log(std) - math.log(len(centers))
    out = []
    step = max(1, _CHUNK_ELEMS // len(centers))
    for i in range(0, len(x), step):
        d2 = ((x[i : i + step, None, :] - centers[None]) ** 2).sum(-1)
        out.append(torch.logsumexp(-d2 / (2 * std * std), 1) + log_norm)
    return torch.cat(out) if out else x.new_zeros(0)


def _eight_gaussians(x):
    a = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    centers = 4.0 * torch.stack([torch.cos(a), torch.sin(a)], 1) / 1.414
    return _gaussian_mixture(x, centers, 0.5 / 1.414)


def _twenty_five_gaussians(x):
    grid = torch.arange(-2, 3, dtype=torch.float64)
    centers = 2 * torch.cartesian_prod(grid, grid) / 2.828
    return _gaussian_mixture(x, centers, toy2d.TWENTY_FIVE_STD / 2.828)


def _checkerboard(x):
    # dark squares (before the final x2 scaling): [i, i+1] x [j, j+1], i, j in -2..1, i + j even
    corners = [(i, j) for i in range(-2, 2) for j in range(-2, 2) if (i + j) % 2 == 0]
    lo = 2 * torch.tensor(corners, dtype=torch.float64).to(x)
    inside = ((x[:, None, :] >= lo) & (x[:, None, :] <= lo + 2)).all(-1).any(-1)
    return torch.full_like(x[:, 0], -math.log(32.0)).masked_fill(~inside, -math.inf)


def _circles(x):
    s = 0.24  # 3 * 0.08
    r = torch.linalg.vector_norm(x, dim=1)
    terms = []
    for radius in (3.0, 1.5):
        z = radius * r / (s * s)
        terms.append(-((r - radius) ** 2) / (2 * s * s) + torch.log(torch.special.i0e(z)))
    return torch.logsumexp(torch.stack(terms, 1), 1) - math.log(2) - LOG_2PI - 2 * math.log(s)


# --------------------------------------------------------------------------- curve + kernel quadrature


@dataclass
class _CurveRule:
    """p(x) = sum_j w_j k(x - pos_j), nodes grouped in panels for distance-based pruning."""

    pos: torch.Tensor  # (P, G, 2) node positions (curve points)
    logw: torch.Tensor  # (P, G) log quadrature weight * log density of the curve parameter
    centre: torch.Tensor  # (P, 2) centre of each panel's kernel centres
    radius: torch.Tensor  # (P,) max distance of a panel's kernel centres from its centre
    std: float  # Gaussian noise std
    box: float  # side of the uniform jitter square [0, box)^2 (0: none)


def _gauss_legendre(edges: np.ndarray, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes/weights, shape (panels, nodes), on the given panel edges."""
    u, w = np.polynomial.legendre.leggauss(nodes)
    a, b = edges[:-1, None], edges[1:, None]
    return (a + b) / 2 + (b - a) / 2 * u, (b - a) / 2 * w


def _arc_edges(t0: float, t1: float, speed, max_arc: float) -> np.ndarray:
    """Panel edges on [t0, t1] of equal arc length (at most max_arc) along a curve with |c'(t)| = speed(t)."""
    t = np.linspace(t0, t1, 200_001)
    v = speed(t)
    s = np.concatenate([[0.0], np.cumsum((v[1:] + v[:-1]) / 2 * np.diff(t))])
    m = max(1, math.ceil(s[-1] / max_arc))
    edges = np.interp(np.linspace(0, s[-1], m + 1), s, t)
    edges[0], edges[-1] = t0, t1
    return edges


def _build_rule(arms, std: float, box: float = 0.0) -> _CurveRule:
    """arms: list of (t_nodes (P, G), log_weights (P, G), curve(t) -> (..., 2)) per mixture component."""
    pos, logw = [], []
    for t, lw, curve in arms:
        pos.append(curve(torch.as_tensor(t, dtype=torch.float64)))
        logw.append(torch.as_tensor(lw, dtype=torch.float64))
    pos, logw = torch.cat(pos), torch.cat(logw)
    kc = pos + box / 2  # kernel centres: curve point + centre of the jitter square
    centre = kc.mean(1)
    radius = torch.linalg.vector_norm(kc - centre[:, None], dim=-1).amax(1)
    return _CurveRule(pos, logw, centre, radius, std, box)


def _segment_logsumexp(values: torch.Tensor, index: torch.Tensor, n: int) -> torch.Tensor:
    m = torch.full((n,), -math.inf, dtype=values.dtype, device=values.device)
    m = m.scatter_reduce(0, index, values, "amax")
    s = torch.zeros(n, dtype=values.dtype, device=values.device)
    s = s.index_add_(0, index, torch.exp(values - m[index]))
    return m + torch.log(s)


def _log_box_gauss(z: torch.Tensor, box: float, std: float) -> torch.Tensor:
    """log of the density of U[0, box) + N(0, std^2) at z, stable in both tails."""
    h = box / 2
    u = (z - h).abs()
    l1 = torch.special.log_ndtr((h - u) / std)
    l2 = torch.special.log_ndtr((-h - u) / std)
    return l1 + torch.log1p(-torch.exp(l2 - l1)) - math.log(box)


def _log_kernel(dx: torch.Tensor, dy: torch.Tensor, rule: _CurveRule) -> torch.Tensor:
    if rule.box > 0:
        return _log_box_gauss(dx, rule.box, rule.std) + _log_box_gauss(dy, rule.box, rule.std)
    s2 = rule.std * rule.std
    return -(dx * dx + dy * dy) / (2 * s2) - LOG_2PI - math.log(s2)


_PRUNE_NATS = 60.0  # panels whose every node is this many nats below the best node's lower bound are dropped


def _curve_log_density(x: torch.Tensor, rule: _CurveRule) -> torch.Tensor:
    """log sum_j w_j k(x - pos_j), evaluated only on the panels that can matter for each point.

    For the Gaussian (box = 0) kernel log k = -d^2/(2 s^2) + const exactly; with the jitter square,
    -(d + h)^2/(2 s^2) <= log k - const <= -max(d - h, 0)^2/(2 s^2), d the distance to the square's
    centre and h its half-diagonal. A panel is skipped when its upper bound is _PRUNE_NATS below the
    largest lower bound of any panel, so the skipped mass is < (nodes) e^-60 of p(x) (relative).
    """
    dev = x.device
    pos, logw = rule.pos.to(dev), rule.logw.to(dev)
    centre, radius = rule.centre.to(dev), rule.radius.to(dev)
    lw_max, lw_min = logw.amax(1), logw.amin(1)
    n_panels, n_nodes = logw.shape
    half_diag = rule.box / math.sqrt(2)
    two_s2 = 2 * rule.std * rule.std
    margin = _PRUNE_NATS + math.log(logw.numel())
    out = []
    step = max(1, _CHUNK_ELEMS // (n_panels * n_nodes))
    for i in range(0, len(x), step):
        xc = x[i : i + step]
        d = torch.cdist(xc, centre)  # (B, P)
        upper = lw_max - torch.clamp(d - radius - half_diag, min=0) ** 2 / two_s2
        lower = lw_min - (d + radius + half_diag) ** 2 / two_s2
        keep = upper > lower.amax(1, keepdim=True) - margin
        pi, pp = keep.nonzero(as_tuple=True)
        dx = xc[pi, 0, None] - pos[pp, :, 0]
        dy = xc[pi, 1, None] - pos[pp, :, 1]
        per_panel = torch.logsumexp(_log_kernel(dx, dy, rule) + logw[pp], 1)
        out.append(_segment_logsumexp(per_panel, pi, len(xc)))
    return torch.cat(out) if out else x.new_zeros(0)


@cache
def _moons_rule(panel_arc: float = 0.1, nodes: int = 8) -> _CurveRule:
    # after the final 2x: upper arc 2(cos t, sin t) + b, lower arc 2(1 - cos t, 0.5 - sin t) + b
    t, w = _gauss_legendre(_arc_edges(0.0, math.pi, lambda t: 2 + 0 * t, panel_arc), nodes)
    lw = np.log(w) - math.log(math.pi) - math.log(2)

    def upper(t):
        return torch.stack([2 * torch.cos(t) - 1.0, 2 * torch.sin(t) - 0.2], -1)

    def lower(t):
        return torch.stack([2 * (1 - torch.cos(t)) - 1.0, 2 * (0.5 - torch.sin(t)) - 0.2], -1)

    return _build_rule([(t, lw, upper), (t, lw, lower)], std=0.2)


@cache
def _swissroll_rule(panel_arc: float = 0.1, nodes: int = 8) -> _CurveRule:
    t0, t1 = 1.5 * math.pi, 4.5 * math.pi
    edges = _arc_edges(t0, t1, lambda t: np.sqrt(1 + t * t) / 5, panel_arc)
    t, w = _gauss_legendre(edges, nodes)
    lw = np.log(w) - math.log(t1 - t0)

    def curve(t):
        return torch.stack([t * torch.cos(t), t * torch.sin(t)], -1) / 5

    return _build_rule([(t, lw, curve)], std=0.2)


@cache
def _two_spirals_rule(panel_arc: float = 0.05, nodes: int = 8) -> _CurveRule:
    big_t = 3 * math.pi  # 540 degrees
    edges = _arc_edges(0.0, big_t, lambda t: np.sqrt(1 + t * t) / 3, panel_arc)
    t, w = _gauss_legendre(edges, nodes)
    lw = np.log(w) + np.log(2 * t / big_t**2) - math.log(2)

    def arm(sign):
        def curve(t):
            return sign * torch.stack([-torch.cos(t) * t, torch.sin(t) * t], -1) / 3

        return curve

    return _build_rule([(t, lw, arm(1.0)), (t, lw, arm(-1.0))], std=0.1, box=0.5 / 3)


# --------------------------------------------------------------------------- pinwheel


_PW_ARMS, _PW_RATE, _PW_RSTD, _PW_TSTD = 5, 0.25, 0.3, 0.1
_PW_RHO_MAX = 25.0  # |x| > 50: roots are searched on the circle rho = 25 (log p < -3000 there anyway)
_PW_MAX_ROOTS = 64  # preimages kept per monotone piece on a folded circle (nearest the mode)


def _pw_fold_radius() -> float:
    """Smallest rho at which phi -> phi + 0.25 exp(rho cos phi) stops being monotone (~1.6955)."""

    def peak(r):  # max over phi of 0.25 r sin(phi) exp(r cos(phi)), at cos(phi) = (sqrt(1 + 4r^2) - 1)/(2r)
        c = (math.sqrt(1 + 4 * r * r) - 1) / (2 * r)
        return _PW_RATE * r * math.sqrt(1 - c * c) * math.exp(r * c)

    lo, hi = 0.5, 3.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if peak(mid) < 1 else (lo, mid)
    return lo


_PW_RHO_STAR = _pw_fold_radius()


def _bisect(fn, lo: torch.Tensor, hi: torch.Tensor, increasing, tol: float = 1e-14) -> torch.Tensor:
    """Root of fn in [lo, hi] (fn(lo), fn(hi) of opposite sign), elementwise; increasing: bool tensor."""
    width = (hi - lo).amax().item() if lo.numel() else 0.0
    iters = min(200, max(1, math.ceil(math.log2(max(width, tol) / tol))))
    for _ in range(iters):
        mid = (lo + hi) / 2
        below = (fn(mid) < 0) == increasing  # root lies right of mid
        lo, hi = torch.where(below, mid, lo), torch.where(below, hi, mid)
    return (lo + hi) / 2


def _pinwheel(x: torch.Tensor) -> torch.Tensor:
    n = len(x)
    y = x / 2
    rho_pt = torch.linalg.vector_norm(y, dim=1)
    psi_pt = torch.atan2(y[:, 1], y[:, 0])
    arm_angle = (2 * math.pi / _PW_ARMS) * torch.arange(_PW_ARMS, dtype=x.dtype, device=x.device)
    # one "item" per (point, arm): find every latent angle phi with phi + 0.25 e^{rho cos phi} = psi mod 2 pi
    rho = rho_pt.repeat_interleave(_PW_ARMS)
    psi = (psi_pt[:, None] - arm_angle).reshape(-1)
    item_point = torch.arange(n, device=x.device).repeat_interleave(_PW_ARMS)
    two_pi = 2 * math.pi
    roots_phi, roots_item = [], []

    # injective circles: G(phi) = phi + 0.25 e^{rho cos phi} is increasing with G(phi + 2pi) = G(phi) + 2pi
    inj = (rho < _PW_RHO_STAR).nonzero(as_tuple=True)[0]
    if len(inj):
        r, p = rho[inj], psi[inj]
        lo, hi = p - _PW_RATE * torch.exp(r), p - _PW_RATE * torch.exp(-r)
        increasing = torch.ones_like(r, dtype=torch.bool)
        phi = _bisect(lambda f: f + _PW_RATE * torch.exp(r * torch.cos(f)) - p, lo, hi, increasing)
        roots_phi.append(phi)
        roots_item.append(inj)

    fold = (rho >= _PW_RHO_STAR).nonzero(as_tuple=True)[0]
    if len(fold):
        r, p = rho[fold], psi[fold]
        r = torch.clamp(r, max=_PW_RHO_MAX)  # float64 cannot resolve G mod 2 pi beyond; log p < -3000 there
        c = (torch.sqrt(1 + 4 * r * r) - 1) / (2 * r)
        phi_max = torch.acos(c)

        def dg(f):  # G'(phi) = 1 - 0.25 rho sin(phi) e^{rho cos phi} (the Jacobian determinant)
            return 1 - _PW_RATE * r * torch.sin(f) * torch.exp(r * torch.cos(f))

        zeros = torch.zeros_like(r)
        true = torch.ones_like(r, dtype=torch.bool)
        phi_a = _bisect(dg, zeros, phi_max, ~true)  # G' goes + -> -
        phi_b = _bisect(dg, phi_max, zeros + math.pi, true)  # G' goes - -> +
        g_a = phi_a + _PW_RATE * torch.exp(r * torch.cos(phi_a))
        g_b = phi_b + _PW_RATE * torch.exp(r * torch.cos(phi_b))
        # piece A: [phi_b - 2pi, phi_a], G increasing from g_b - 2pi to g_a;
        # piece B: [phi_a, phi_b], G decreasing from g_a to g_b. Targets psi + 2 pi m in each range.
        m_top = torch.floor((g_a - p) / two_pi)
        for m_low, lo0, hi0, inc in (
            (torch.ceil((g_b - two_pi - p) / two_pi), phi_b - two_pi, phi_a, True),
            (torch.ceil((g_b - p) / two_pi), phi_a, phi_b, False),
        ):
            count = torch.clamp(m_top - m_low + 1, min=0, max=_PW_MAX_ROOTS).long()
            sub = torch.repeat_interleave(torch.arange(len(fold), device=x.device), count)
            if not len(sub):
                continue
            start = torch.cumsum(count, 0) - count
            j = torch.arange(len(sub), device=x.device) - start[sub]
            target = p[sub] + two_pi * (m_top[sub] - j)
            rs = r[sub]
            phi = _bisect(
                lambda f, rs=rs, target=target: f + _PW_RATE * torch.exp(rs * torch.cos(f)) - target,
                lo0[sub],
                hi0[sub],
                torch.full_like(rs, inc, dtype=torch.bool),
            )
            roots_phi.append(phi)
            roots_item.append(fold[sub])

    phi, item = torch.cat(roots_phi), torch.cat(roots_item)
    r = rho[item]
    f1, f2 = r * torch.cos(phi), r * torch.sin(phi)
    log_n = -((f1 - 1) ** 2) / (2 * _PW_RSTD**2) - f2**2 / (2 * _PW_TSTD**2) - LOG_2PI - math.log(_PW_RSTD * _PW_TSTD)
    # log |dx/df| = log 4 + log |1 - a f2|, a = 0.25 e^{f1}; for |a f2| > e^30 that is log|a f2| to 1e-13
    log_af2 = math.log(_PW_RATE) + f1 + torch.log(f2.abs())
    a_f2 = torch.sign(f2) * torch.exp(torch.clamp(log_af2, max=30.0))
    log_det = torch.where(log_af2 > 30.0, log_af2, torch.log(torch.abs(1 - a_f2))) + math.log(4.0)
    return _segment_logsumexp(log_n - log_det - math.log(_PW_ARMS), item_point[item], n)


# --------------------------------------------------------------------------- public API


_DENSITIES = {
    "moons": lambda x: _curve_log_density(x, _moons_rule()),
    "circles": _circles,
    "8gaussians": _eight_gaussians,
    "25gaussians": _twenty_five_gaussians,
    "checkerboard": _checkerboard,
    "2spirals": lambda x: _curve_log_density(x, _two_spirals_rule()),
    "pinwheel": _pinwheel,
    "swissroll": lambda x: _curve_log_density(x, _swissroll_rule()),
}


def log_density(name: str, x: torch.Tensor) -> torch.Tensor:
    """log p(x) in nats of toy distribution ``name`` at points x (N, 2); float64, shape (N,).

    Works on any float dtype/device (computed in float64, without gradients); -inf only outside the
    checkerboard's support. Memory is bounded by chunking (a few tens of MB), whatever N.
    """
    if name not in _DENSITIES:
        raise UnknownNameError("toy dataset", name, _DENSITIES)
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[1] != 2:
        raise DataError(f"log_density expects points of shape (N, 2), got {tuple(x.shape)}")
    x = x.detach().to(torch.float64)
    if not len(x):
        return x.new_zeros(0)
    if not torch.isfinite(x).all():
        raise DataError("log_density got non-finite points")
    fn = _DENSITIES[name]
    with torch.no_grad():
        return torch.cat([fn(x[i : i + _CHUNK_POINTS]) for i in range(0, len(x), _CHUNK_POINTS)])


@lru_cache(maxsize=1)
def _entropy_table() -> dict:
    with open(ENTROPY_FILE) as f:
        return json.load(f)


def entropy(name: str) -> dict:
    """Shipped entropy of toy ``name``: {"entropy_nats", "stderr", "n_samples", "method"} (nats).

    ``entropy_nats`` is H = -E[log p(X)], the lower bound on the expected NLL (nats) of any model on
    fresh data from the toy; ``stderr`` its Monte Carlo standard error (0 for the analytic values).
    """
    table = _entropy_table()
    if name not in table:
        raise UnknownNameError("toy dataset", name, table)
    return dict(table[name])
