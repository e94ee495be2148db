"""Two-dimensional toy distributions, sampled fresh from a seeded ``torch.Generator``.

The shapes and scales follow the toy sets popularised by FFJORD (Grathwohl et al., 2019,
arXiv:1810.01367) and used across the flow and GAN literature; ``25gaussians`` (not in FFJORD)
follows the WGAN-GP toy code (Gulrajani et al., 2017, arXiv:1704.00028). Two deliberate differences from some
copies: every curve parameter is drawn uniformly at random (not on a ``linspace``), so each
distribution has a proper density whose entropy can be computed (see ``deepgen.metrics.toy2d_density``); and
all randomness comes from the generator passed in, so ``sample(name, n, generator)`` is reproducible.

>>> g = torch.Generator().manual_seed(0)
>>> sample("moons", 1000, g).shape
torch.Size([1000, 2])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from deepgen.errors import UnknownNameError

Sampler = Callable[[int, torch.Generator], torch.Tensor]


def _randn(n, g, d=2):
    return torch.randn(n, d, generator=g, dtype=torch.float64)


def _rand(n, g, d=1):
    return torch.rand(n, d, generator=g, dtype=torch.float64)


def _split(n: int, k: int, g: torch.Generator) -> torch.Tensor:
    """Component index for each of n points, uniform over k components."""
    return torch.randint(0, k, (n,), generator=g)


def moons(n, g, noise=0.1):
    """Two interleaving half circles (as sklearn's make_moons), scaled by 2 and centred."""
    t = math.pi * _rand(n, g)
    upper = _split(n, 2, g).unsqueeze(1) == 0
    outer = torch.cat([torch.cos(t), torch.sin(t)], 1)
    inner = torch.cat([1 - torch.cos(t), 0.5 - torch.sin(t)], 1)
    x = torch.where(upper, outer, inner) + noise * _randn(n, g)
    return 2 * x + torch.tensor([-1.0, -0.2], dtype=torch.float64)


def circles(n, g, factor=0.5, noise=0.08):
    """Two concentric circles of radii 3 and 1.5 with Gaussian noise (sklearn's make_circles x3)."""
    t = 2 * math.pi * _rand(n, g)
    r = torch.where(_split(n, 2, g).unsqueeze(1) == 0, 1.0, factor)
    x = r * torch.cat([torch.cos(t), torch.sin(t)], 1) + noise * _randn(n, g)
    return 3 * x


def eight_gaussians(n, g, scale=4.0, std=0.5):
    """Eight Gaussians (std 0.5) on a circle of radius 4, all divided by 1.414."""
    angles = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
    centers = scale * torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    k = _split(n, 8, g)
    return (centers[k] + std * _randn(n, g)) / 1.414


#: Standard deviation of each 25gaussians component before the division by 2.828, as in the WGAN-GP
#: toy code (Gulrajani et al., 2017, arXiv:1704.00028) that the mode-coverage literature uses.
TWENTY_FIVE_STD = 0.05


def twenty_five_gaussians(n, g, std=TWENTY_FIVE_STD):
    """A 5x5 grid of tight Gaussians (centres 2*(-2..2), std 0.05), all divided by 2.828 (WGAN-GP)."""
    grid = torch.arange(-2, 3, dtype=torch.float64)
    centers = 2 * torch.cartesian_prod(grid, grid)
    k = _split(n, 25, g)
    return (centers[k] + std * _randn(n, g)) / 2.828


def checkerboard(n, g):
    """Uniform on the 8 dark squares (side 2) of a 4x4 checkerboard on [-4, 4]^2."""
    x1 = 4 * _rand(n, g) - 2
    x2 = _rand(n, g) - 2 * torch.randint(0, 2, (n, 1), generator=g).double()
    x2 = x2 + torch.remainder(torch.floor(x1), 2)
    return 2 * torch.cat([x1, x2], 1)


def two_spirals(n, g):
    """Two interleaved spirals: radius sqrt(U)*3pi, uniform jitter [0, 0.5), /3, then N(0, 0.1^2)."""
    t = torch.sqrt(_rand(n, g)) * (540 * 2 * math.pi / 360)
    sign = torch.where(_split(n, 2, g).unsqueeze(1) == 0, 1.0, -1.0).double()
    d = torch.cat([-torch.cos(t) * t, torch.sin(t) * t], 1)
    x = sign * d + 0.5 * _rand(n, g, 2)
    return x / 3 + 0.1 * _randn(n, g)


def pinwheel(n, g, radial_std=0.3, tangential_std=0.1, arms=5, rate=0.25):
    """Five curved arms: a Gaussian blob per arm, rotated by an angle growing with its radius."""
    f = _randn(n, g) * torch.tensor([radial_std, tangential_std], dtype=torch.float64)
    f[:, 0] += 1.0
    k = _split(n, arms, g)
    angle = (2 * math.pi / arms) * k.double() + rate * torch.exp(f[:, 0])
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    return 2 * torch.einsum("nij,nj->ni", rot, f)


def swissroll(n, g, noise=1.0):
    """sklearn's make_swiss_roll (t ~ 1.5pi(1+2U), noise 1), the (x, z) plane, divided by 5."""
    t = 1.5 * math.pi * (1 + 2 * _rand(n, g))
    x = torch.cat([t * torch.cos(t), t * torch.sin(t)], 1) + noise * _randn(n, g)
    return x / 5


TOY2D: dict[str, Sampler] = {
    "moons": moons,
    "circles": circles,
    "8gaussians": eight_gaussians,
    "25gaussians": twenty_five_gaussians,
    "checkerboard": checkerboard,
    "2spirals": two_spirals,
    "pinwheel": pinwheel,
    "swissroll": swissroll,
}


def sample(name: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` float32 points of toy distribution ``name``, shape (n, 2)."""
    if name not in TOY2D:
        raise UnknownNameError("toy dataset", name, TOY2D)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    return TOY2D[name](n, g).float()


def mode_centers(name: str) -> tuple[torch.Tensor, float] | None:
    """Mode centres (k, 2) and per-mode std of the mixture toys, for mode-coverage metrics."""
    if name == "8gaussians":
        a = torch.arange(8, dtype=torch.float64) * (math.pi / 4)
        return (4 * torch.stack([torch.cos(a), torch.sin(a)], 1) / 1.414).float(), 0.5 / 1.414
    if name == "25gaussians":
        grid = torch.arange(-2, 3, dtype=torch.float64)
        return (2 * torch.cartesian_prod(grid, grid) / 2.828).float(), TWENTY_FIVE_STD / 2.828
    return None
