"""The bijector contract, checked in float64 on every reference bijector.

Each case builds a bijector and names the shape of one batch and the domains its inputs and latents
live in; :func:`deepgen.bijectors.testing.check_bijector` then checks shapes and dtypes, batch
independence, ``inverse(forward(x)) == x``, ``forward(inverse(z)) == z``, log-dets summing to zero,
and both log-dets against ``slogdet`` of the autograd Jacobian.

Adding a bijector is one line in ``CASES`` (here, or in a ``tests/bijectors/cases_*.py`` file of
its group, whose ``CASES`` list is collected too):

    Case("my-layer", lambda: MyLayer(3, hidden=8), (4, 3)),

with ``domain="unit"`` (inputs in (0, 1)) or ``"symmetric"`` ((-1, 1)) where the layer's data lives
there, ``codomain`` likewise for its latents, ``context=N`` for ``N`` labels passed as ``context``,
and ``invertible=False`` for a layer without an inverse. ``test_every_bijector_class_has_a_case``
fails when a class in ``deepgen.bijectors`` has no case of its own.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
from pathlib import Path

import pytest
import torch

import deepgen.bijectors as bij
from deepgen.bijectors import (
    Affine,
    Bijector,
    Compose,
    ConditionalAffine,
    Identity,
    Inverse,
    Logit,
    Permute,
    RandomPermutation,
    Rescale,
    Reverse,
    Sigmoid,
    Tanh,
    bisection_inverse,
    fixed_point_inverse,
    sum_except_batch,
)
from deepgen.bijectors.testing import Case, check_bijector


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed=0, scale=0.5):
    return torch.randn(*shape, generator=_g(seed)) * scale


class ResidualTanh(Bijector):
    """Test layer with a numerical inverse: ``z = x + c tanh(x)`` (a 1-D residual block, Lip = c < 1)."""

    def __init__(self, c: float = 0.6, method: str = "fixed_point"):
        super().__init__()
        self.c, self.method = c, method

    def forward(self, x, context=None):
        t = torch.tanh(x)
        return x + self.c * t, sum_except_batch(torch.log1p(self.c * (1 - t * t)))

    def inverse(self, z, context=None):
        if self.method == "fixed_point":
            x = fixed_point_inverse(lambda v: self.c * torch.tanh(v), z)
        else:  # |x - z| <= c, so [z - c, z + c] brackets the root
            x = bisection_inverse(lambda v: v + self.c * torch.tanh(v), z, z - self.c, z + self.c)
        return x, -self.forward(x)[1]


class ForwardOnly(Bijector):
    """Test layer without an inverse (like planar/radial flows): the base raises NoInverseError."""

    def forward(self, x, context=None):
        return x + 0.5 * torch.sin(x), sum_except_batch(torch.log1p(0.5 * torch.cos(x)))


CASES = [
    Case("identity", Identity, (3, 4)),
    Case("affine", lambda: Affine(3, loc=_randn(3), log_scale=_randn(3, seed=1)), (4, 3)),
    Case("affine-fixed", lambda: Affine(3, loc=_randn(3), log_scale=_randn(3, seed=1), learnable=False), (4, 3)),
    Case("affine-per-channel", lambda: Affine((2, 1, 1), loc=_randn(2, 1, 1), log_scale=_randn(2, 1, 1)), (3, 2, 3, 3)),
    Case("conditional-affine", lambda: _perturbed(ConditionalAffine(3, 4)), (5, 4), context=3),
    Case("rescale", lambda: Rescale(2.0, -1.0), (4, 3)),
    Case("rescale-tensor", lambda: Rescale(torch.tensor([0.5, -3.0, 2.0]), torch.tensor([1.0, 0.0, -1.0])), (4, 3)),
    Case("logit", lambda: Logit(0.05), (3, 1, 3, 3), domain="unit"),
    Case("logit-alpha0", lambda: Logit(0.0), (4, 3), domain="unit"),
    Case("sigmoid", Sigmoid, (4, 3), codomain="unit"),
    Case("tanh", Tanh, (4, 3), codomain="symmetric"),
    Case("permute", lambda: Permute([2, 0, 3, 1]), (4, 4)),
    Case("permute-channels", lambda: Permute([1, 2, 0], dim=1), (2, 3, 2, 2)),
    Case("permute-width", lambda: Permute([1, 2, 0], dim=-1), (2, 1, 2, 3)),
    Case("reverse", Reverse, (4, 5)),
    Case("reverse-height", lambda: Reverse(dim=2), (2, 2, 3, 2)),
    Case("random-permutation", lambda: RandomPermutation(5, generator=_g(3)), (4, 5)),
    Case("compose", lambda: Compose(Logit(0.05), Reverse(), Affine(3, log_scale=_randn(3))), (4, 3), domain="unit"),
    Case("compose-context", lambda: _conditional_chain(), (4, 3), codomain="unit", context=2),
    Case("inverse", lambda: Inverse(Tanh()), (4, 3), domain="symmetric"),
    Case("inverse-affine", lambda: Inverse(Affine(3, loc=_randn(3), log_scale=_randn(3, seed=2))), (4, 3)),
    Case("residual-fixed-point", ResidualTanh, (4, 3)),
    Case("residual-bisection", lambda: ResidualTanh(method="bisection"), (4, 3)),
    Case("forward-only", ForwardOnly, (4, 3), invertible=False),
]


def _case_files() -> list:
    """``CASES`` of every ``tests/bijectors/cases_*.py`` (one file per group of layers)."""
    found = []
    for path in sorted(Path(__file__).parent.glob("cases_*.py")):
        spec = importlib.util.spec_from_file_location(f"bijector_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        found.extend(mod.CASES)
    return found


CASES += _case_files()


def _perturbed(b: Bijector) -> Bijector:
    """Random parameters (a layer initialised to the identity would pass a log-det test trivially)."""
    with torch.no_grad():
        for i, p in enumerate(b.parameters()):
            p.copy_(_randn(*p.shape, seed=10 + i))
    return b


def _conditional_chain() -> Bijector:
    """A conditional layer inside Compose: the context must reach it."""
    return Compose(Reverse(), _perturbed(ConditionalAffine(2, 3)), Sigmoid())


def _points(domain: str, shape, seed: int) -> torch.Tensor:
    u = torch.rand(shape, generator=_g(seed), dtype=torch.float64)
    if domain == "unit":
        return 0.05 + 0.9 * u
    if domain == "symmetric":
        return 0.9 * (2 * u - 1)
    return torch.randn(shape, generator=_g(seed), dtype=torch.float64) * 1.5


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bijector_contract(case):
    b = case.factory().double()
    x = _points(case.domain, case.shape, seed=1)
    ctx = None if case.context is None else torch.arange(case.shape[0]) % case.context
    out_shape = b(x, ctx)[0].shape
    z = _points(case.codomain, out_shape, seed=2)
    check_bijector(b, x, ctx, z=z, atol=case.atol, invertible=case.invertible)


def _library_bijector_classes() -> set[type]:
    for m in pkgutil.walk_packages(bij.__path__, prefix="deepgen.bijectors."):
        importlib.import_module(m.name)
    found = set()
    for mod_name, mod in list(importlib.sys.modules.items()):
        if mod_name.startswith("deepgen.bijectors"):
            for _, cls in inspect.getmembers(mod, inspect.isclass):
                if issubclass(cls, Bijector) and cls is not Bijector and cls.__module__ == mod.__name__:
                    found.add(cls)
    return found


def test_every_bijector_class_has_a_case():
    covered = {type(c.factory()) for c in CASES}
    missing = sorted(c.__name__ for c in _library_bijector_classes() - covered)
    assert not missing, f"add a Case to CASES for: {', '.join(missing)}"


def test_case_names_are_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))
