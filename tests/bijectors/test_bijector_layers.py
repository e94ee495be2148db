"""What each reference bijector computes, Compose/Inverse semantics, and that the checker catches bugs."""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.bijectors import (
    Affine,
    Bijector,
    Compose,
    ConditionalAffine,
    Inverse,
    Logit,
    NoInverseError,
    Permute,
    RandomPermutation,
    Rescale,
    Reverse,
    Sigmoid,
    StandardNormal,
    Tanh,
    bisection_inverse,
    fixed_point_inverse,
    sum_except_batch,
)
from deepgen.bijectors.testing import check_bijector
from deepgen.errors import DeepgenError

D64 = torch.float64


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=D64)


def test_logit_is_realnvp_logit_with_its_log_det():
    # moved from tests/data: the former data.transforms.logit_transform, now the Logit bijector
    x = torch.rand(3, 4, dtype=D64) * 0.98 + 0.01
    alpha = 0.05
    s = alpha + (1 - 2 * alpha) * x
    z, ld = Logit(alpha)(x)
    assert torch.allclose(z, torch.log(s / (1 - s)))
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: Logit(alpha)(v.unsqueeze(0))[0][0], x[i])
        assert torch.allclose(ld[i], torch.linalg.slogdet(jac).logabsdet)
    assert torch.allclose(Logit(alpha).inverse(z)[0], x)


def test_elementwise_log_dets_stay_finite_in_float32_tails():
    big = torch.tensor([[-60.0, 60.0]])
    for b in (Sigmoid(), Tanh()):
        assert torch.isfinite(b(big)[1]).all()
    x, ld = Logit(0.05).inverse(big)
    assert torch.isfinite(ld).all() and ((x > -0.06) & (x < 1.06)).all()


def test_affine_reads_as_data_location_and_scale():
    a = Affine(2, loc=torch.tensor([1.0, -2.0]), log_scale=torch.tensor([0.0, math.log(3.0)]))
    z, ld = a(torch.tensor([[1.0, -2.0], [2.0, 1.0]]))
    assert torch.allclose(z, torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    assert torch.allclose(ld, torch.full((2,), -math.log(3.0)))
    per_channel = Affine((2, 1, 1), log_scale=torch.tensor([1.0, 2.0]).view(2, 1, 1))
    assert torch.allclose(per_channel(torch.zeros(1, 2, 3, 3))[1], torch.tensor([-9 * 3.0]))  # 9 pixels each
    with pytest.raises(ValueError, match="shape"):
        Affine(3, loc=torch.zeros(2))
    fixed = Affine(2, learnable=False)
    assert not list(fixed.parameters()) and "loc" in fixed.state_dict()


def test_rescale_maps_unit_interval_and_rejects_zero_scale():
    z, ld = Rescale(2.0, -1.0)(torch.tensor([[0.0, 0.5, 1.0]]))
    assert torch.allclose(z, torch.tensor([[-1.0, 0.0, 1.0]])) and torch.allclose(ld, torch.tensor([3 * math.log(2)]))
    with pytest.raises(ValueError):
        Rescale(0.0)


def test_compose_runs_in_order_and_sums_log_dets():
    a, lg = Affine(3, loc=_x(3).float(), log_scale=_x(3, seed=1).float()).double(), Logit(0.1)
    x = torch.rand(5, 3, dtype=D64) * 0.8 + 0.1
    z1, ld1 = lg(x)
    z2, ld2 = a(z1)
    z, ld = Compose(lg, a)(x)
    assert torch.allclose(z, z2) and torch.allclose(ld, ld1 + ld2)
    xb, ldb = Compose(lg, a).inverse(z)  # reverse order: affine first, then the logit's inverse
    assert torch.allclose(xb, x) and torch.allclose(ldb, -ld)
    assert not torch.allclose(Compose(a, lg)(z1)[0], z2)  # the order matters, so the test can fail
    c = Compose(lg, a)
    assert len(c) == 2 and c[1] is a and list(c) == [lg, a] and len(list(c.parameters())) == 2
    with pytest.raises(TypeError):
        Compose(lg, torch.nn.Linear(2, 2))


def test_inverse_swaps_directions_and_shares_parameters():
    a = Affine(3, loc=torch.ones(3), log_scale=torch.full((3,), 0.5))
    x = torch.randn(4, 3)
    assert all(torch.equal(u, v) for u, v in zip(Inverse(a)(x), a.inverse(x)))
    assert all(torch.equal(u, v) for u, v in zip(Inverse(a).inverse(x), a(x)))
    assert list(Inverse(a).parameters())[0] is a.loc
    # Inverse(Sigmoid) is the plain logit
    u = torch.rand(4, 3, dtype=D64) * 0.9 + 0.05
    assert torch.allclose(Inverse(Sigmoid())(u)[0], Logit(0.0)(u)[0])
    assert torch.allclose(Inverse(Sigmoid())(u)[1], Logit(0.0)(u)[1])


def test_context_reaches_conditional_members_through_compose():
    b = ConditionalAffine(2, 3)
    with torch.no_grad():
        b.loc[1] = 5.0
    f = Compose(Reverse(), b)
    x = torch.randn(2, 3)
    z0, _ = f(x, torch.tensor([0, 0]))
    z1, _ = f(x, torch.tensor([1, 1]))
    assert torch.allclose(z0 - z1, torch.full_like(z0, 5.0))
    assert torch.allclose(f.inverse(z1, torch.tensor([1, 1]))[0], x, atol=1e-6)
    with pytest.raises(ValueError, match="context"):
        f(x)


def test_permutations_index_as_documented():
    x = torch.tensor([[10.0, 11.0, 12.0, 13.0]])
    assert torch.equal(Permute([2, 0, 3, 1])(x)[0], torch.tensor([[12.0, 10.0, 13.0, 11.0]]))
    assert torch.equal(Reverse()(x)[0], x.flip(1))
    img = torch.arange(24.0).view(1, 2, 3, 4)
    assert torch.equal(Permute([1, 0])(img)[0], img[:, [1, 0]])  # channels of an image
    for bad in ([0, 0, 1], [1, 2, 3]):
        with pytest.raises(ValueError, match="not a permutation"):
            Permute(bad)
    with pytest.raises(ValueError, match="batch"):
        Reverse(dim=0)
    with pytest.raises(ValueError, match="size"):
        Permute([1, 0])(x)


def test_random_permutation_is_seeded_and_saved():
    a, b, c = RandomPermutation(16, generator=1), RandomPermutation(16, generator=1), RandomPermutation(16, generator=2)
    assert torch.equal(a.perm, b.perm) and not torch.equal(a.perm, c.perm)
    c.load_state_dict(a.state_dict())  # a checkpoint restores the drawn permutation
    assert torch.equal(c.perm, a.perm) and torch.equal(c.inverse_perm, a.inverse_perm)


def test_log_dets_follow_the_input_dtype():
    for b in (Affine(3), Rescale(2.0), Logit(), Reverse(), Compose(Affine(3), Reverse())):
        for dt in (torch.float32, D64):
            x = torch.rand(2, 3, dtype=dt) * 0.5 + 0.25
            _, ld = b.to(dt)(x)
            assert ld.dtype == dt and ld.shape == (2,)


def test_missing_inverse_is_a_clear_error():
    class Planarish(Bijector):
        def forward(self, x, context=None):
            return x, sum_except_batch(torch.zeros_like(x))

    with pytest.raises(NoInverseError, match="Planarish has no closed-form inverse") as e:
        Planarish().inverse(torch.zeros(1, 2))
    assert isinstance(e.value, DeepgenError)


def test_numerical_inverses_solve_their_equations():
    z = torch.linspace(-4, 4, 9, dtype=D64)
    x = bisection_inverse(torch.tanh, torch.tanh(z), -10.0, 10.0)
    assert torch.allclose(x, z, atol=1e-10)
    x = fixed_point_inverse(lambda v: 0.7 * torch.sin(v), z)
    assert torch.allclose(x + 0.7 * torch.sin(x), z, atol=1e-9)


class _WrongLogDet(Bijector):
    def forward(self, x, context=None):
        return 2 * x, sum_except_batch(torch.full_like(x, -math.log(2)))  # sign error

    def inverse(self, z, context=None):
        return z / 2, sum_except_batch(torch.full_like(z, math.log(2)))


class _MixesBatch(Bijector):
    def forward(self, x, context=None):
        return x - x.mean(0), sum_except_batch(torch.zeros_like(x))

    def inverse(self, z, context=None):
        return z, sum_except_batch(torch.zeros_like(z))


class _WrongInverse(Bijector):
    def forward(self, x, context=None):
        return 3 * x, sum_except_batch(torch.full_like(x, math.log(3)))

    def inverse(self, z, context=None):
        return z / 2, sum_except_batch(torch.full_like(z, -math.log(3)))


@pytest.mark.parametrize(
    "broken, message",
    [
        (_WrongLogDet, "log-det vs autograd"),
        (_MixesBatch, "alone vs in the batch"),
        (_WrongInverse, r"inverse\(forward\(x\)\) vs x"),
    ],
)
def test_checker_catches_broken_bijectors(broken, message):
    with pytest.raises(AssertionError, match=message):
        check_bijector(broken(), _x(4, 3))


def test_standard_normal_base():
    base = StandardNormal((2, 3))
    z = _x(5, 2, 3).float()
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum((1, 2))
    assert torch.allclose(base.log_prob(z), expected)
    g = torch.Generator().manual_seed(0)
    assert base.sample(4, g).shape == (4, 2, 3)
    assert torch.equal(base.sample(3, temperature=0.0), torch.zeros(3, 2, 3))
    s = base.sample(20000, torch.Generator().manual_seed(1), temperature=0.5)
    assert abs(s.std().item() - 0.5) < 0.01
    assert base.double().sample(1).dtype == D64
    with pytest.raises(ValueError, match="shape"):
        base.log_prob(torch.zeros(2, 6))


@pytest.mark.parametrize(
    "shape, mask",
    [
        ((3,), "half"),
        ((5,), "half"),
        ((4,), "half"),
        ((5,), "alternate"),
        ((3, 2, 2), "channel"),
        ((5, 2, 2), "channel"),
    ],
)
def test_the_two_parities_transform_complementary_entries(shape, mask):
    """Alternating parity transforms every entry exactly once per pair of layers, odd sizes included."""
    from deepgen.bijectors import AffineCoupling

    torch.manual_seed(0)
    x = torch.randn(2, *shape)
    changed = []
    for parity in (0, 1):
        layer = AffineCoupling(shape, mask=mask, parity=parity, hidden=(8,), blocks=1, zero_init=False)
        with torch.no_grad():
            changed.append((layer(x)[0] != x).all(0))
    assert changed[0].any() and changed[1].any()
    assert torch.equal(changed[0] | changed[1], torch.ones(shape, dtype=torch.bool))
    assert not (changed[0] & changed[1]).any()
