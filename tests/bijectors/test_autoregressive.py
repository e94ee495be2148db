"""Masked autoregressive flows (MAF, arXiv:1705.07057; NSF, arXiv:1906.04032; IAF, arXiv:1606.04934):
triangular Jacobians in the ordering, exact sequential inverses, IAF = inverse of MAF, context,
identity at zero initialisation; and the context input of MADENetwork."""

from __future__ import annotations

import pytest
import torch

from deepgen.bijectors.autoregressive import (
    InverseAutoregressive,
    MaskedAffineAutoregressive,
    MaskedAutoregressive,
    MaskedSplineAutoregressive,
)
from deepgen.bijectors.splines import RQSplineTransform
from deepgen.nn.made import MADENetwork


def _perturbed(module, scale: float = 0.5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module.double()


def _x(*shape, seed=1, scale=1.5):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


LAYERS = {
    "affine-natural": lambda: MaskedAffineAutoregressive(5, (16, 16)),
    "affine-reverse": lambda: MaskedAffineAutoregressive(5, (16,), order="reverse"),
    "affine-random": lambda: MaskedAffineAutoregressive(5, (16,), order="random", seed=3),
    "spline-permutation": lambda: MaskedSplineAutoregressive(5, (16,), num_bins=4, bound=2.0, order=[3, 0, 4, 2, 1]),
    "spline-no-hidden": lambda: MaskedAutoregressive(5, RQSplineTransform(3), ()),
}


@pytest.mark.parametrize("name", LAYERS)
def test_jacobian_is_triangular_in_the_ordering(name):
    b = _perturbed(LAYERS[name]())
    order = b.order()
    x = _x(5)[None]
    jac = torch.autograd.functional.jacobian(lambda v: b(v[None])[0][0], x[0])
    permuted = jac[order][:, order]  # rows and columns in generation order
    assert (permuted.triu(1) == 0).all(), "an output depends on an input at or after it in the ordering"
    assert permuted.tril(-1).abs().sum() > 0  # ... and does depend on earlier ones
    _, log_det = b(x)
    assert torch.allclose(log_det[0], torch.linalg.slogdet(jac)[1], atol=1e-10)
    if name == "affine-reverse":
        assert torch.equal(order, torch.arange(4, -1, -1))


@pytest.mark.parametrize("name", LAYERS)
def test_sequential_inverse_is_exact(name):
    b = _perturbed(LAYERS[name](), seed=2)
    x = _x(7, 5)
    z, log_det = b(x)
    x2, inv_log_det = b.inverse(z)
    assert (x2 - x).abs().max() < 1e-10 and (inv_log_det + log_det).abs().max() < 1e-10
    z0 = _x(7, 5, seed=3)
    z1, _ = b(b.inverse(z0)[0])
    assert (z1 - z0).abs().max() < 1e-10


def test_sampling_direction_is_differentiable():
    b = _perturbed(MaskedSplineAutoregressive(4, (8,), num_bins=4), seed=4)
    x, log_det = b.inverse(_x(3, 4))
    (x.square().sum() + log_det.sum()).backward()
    grads = [p.grad for p in b.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_iaf_is_the_inverse_of_maf():
    iaf = _perturbed(InverseAutoregressive(4, (12,), order="random", seed=1), seed=5)
    maf = iaf.b
    assert isinstance(maf, MaskedAffineAutoregressive)
    x = _x(6, 4)
    z, log_det = iaf(x)  # density direction: D passes
    z_maf, log_det_maf = maf.inverse(x)
    assert torch.equal(z, z_maf) and torch.equal(log_det, log_det_maf)
    x2, inv_log_det = iaf.inverse(z)  # sampling direction: one pass
    assert (x2 - x).abs().max() < 1e-10 and (inv_log_det + log_det).abs().max() < 1e-10
    jac = torch.autograd.functional.jacobian(lambda v: iaf(v[None])[0][0], x[0])
    assert torch.allclose(log_det[0], torch.linalg.slogdet(jac)[1], atol=1e-10)


def test_context_changes_the_output_and_is_required():
    b = _perturbed(MaskedAffineAutoregressive(3, (8,), context_features=4), seed=6)
    x = _x(2, 3).repeat(2, 1)
    labels = torch.tensor([0, 1, 2, 3])
    z, _ = b(x, labels)
    first = b.order()[0]  # sees no entry of x, only the context
    assert z[0, first] != z[2, first] and z[1, first] != z[3, first]
    onehot = torch.nn.functional.one_hot(labels, 4).double()
    assert torch.equal(b(x, onehot)[0], z)  # (B,) labels == their one-hot (B, F) floats
    assert torch.allclose(b.inverse(z, labels)[0], x, atol=1e-10)
    with pytest.raises(ValueError, match="context"):
        b(x)
    with pytest.raises(ValueError, match="context"):
        b.inverse(z)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        b(x, torch.zeros(4, 3, dtype=torch.float64))
    # an unconditional layer ignores a context (Compose hands it to every member)
    plain = _perturbed(MaskedAffineAutoregressive(3, (8,)))
    assert torch.equal(plain(x, labels)[0], plain(x)[0])


def test_context_without_hidden_layers_reaches_the_outputs():
    b = _perturbed(MaskedSplineAutoregressive(3, (), num_bins=4, context_features=2), seed=7)
    x = _x(1, 3).repeat(2, 1)
    z, _ = b(x, torch.tensor([0, 1]))
    assert not torch.allclose(z[0], z[1])


@pytest.mark.parametrize(
    "factory",
    [
        lambda: MaskedAffineAutoregressive(4, (8,)),
        lambda: MaskedSplineAutoregressive(4, (8, 8), num_bins=5),
        lambda: MaskedSplineAutoregressive(4, (), context_features=3),
        lambda: InverseAutoregressive(4, (8,), context_features=3),
        lambda: MaskedAffineAutoregressive(4, (8,), scale="exp"),
    ],
)
def test_zero_init_is_the_identity(factory):
    b = factory().double()
    x = _x(5, 4, scale=2.0)
    ctx = torch.arange(5) % 3
    for direction in (b.forward, b.inverse):
        z, log_det = direction(x, ctx)
        assert torch.allclose(z, x, atol=1e-12, rtol=0) and log_det.abs().max() < 1e-12


def test_only_vectors_are_accepted():
    b = MaskedAffineAutoregressive(4, (8,))
    for bad in (torch.zeros(2, 1, 2, 2), torch.zeros(2, 5), torch.zeros(4)):
        with pytest.raises(ValueError, match=r"vectors of shape \(B, 4\)"):
            b(bad)
        with pytest.raises(ValueError, match=r"vectors of shape \(B, 4\)"):
            b.inverse(bad)
    with pytest.raises(ValueError, match="order"):
        MaskedAffineAutoregressive(4, (8,), order="backwards")
    with pytest.raises(ValueError, match="permutation"):
        MaskedAffineAutoregressive(4, (8,), order=[0, 1, 1, 2])
    with pytest.raises(TypeError, match="ElementwiseTransform"):
        MaskedAutoregressive(4, torch.nn.Identity())


def test_reprs_are_readable():
    assert repr(MaskedAffineAutoregressive(3, (8,), context_features=2, order="random")) == (
        "MaskedAffineAutoregressive(features=3, hidden=(8,), order='random', context_features=2, "
        "scale='softclamp', clamp=3.0)"
    )
    assert repr(MaskedSplineAutoregressive(3, (8,), order=[2, 0, 1])) == (
        "MaskedSplineAutoregressive(features=3, hidden=(8,), order=(2, 0, 1), num_bins=8, bound=3.0)"
    )
    assert repr(InverseAutoregressive(3, (8,))).startswith("InverseAutoregressive(features=3, hidden=(8,)")
    assert repr(MaskedAutoregressive(3, RQSplineTransform(4), (8,))).startswith("MaskedAutoregressive(features=3")


# -- MADENetwork's context input ---------------------------------------------------------------------


def test_made_without_context_is_unchanged():
    torch.manual_seed(0)
    plain = MADENetwork(5, 2, (8, 8), seed=3)
    torch.manual_seed(0)
    conditional = MADENetwork(5, 2, (8, 8), seed=3, context_features=3)
    assert plain.context_hidden is None and plain.context_output is None
    extra = set(conditional.state_dict()) - set(plain.state_dict())
    assert extra == {"context_hidden.weight", "context_output.weight"}
    for key, value in plain.state_dict().items():  # same degrees, masks and initial weights
        assert torch.equal(value, conditional.state_dict()[key]), key
    x = torch.randn(4, 5)
    assert torch.equal(plain(x), plain.flat_params(x).view(4, 2, 5).transpose(1, 2))
    with torch.no_grad():
        conditional.context_hidden.weight.zero_()
        conditional.context_output.weight.zero_()
    assert torch.equal(conditional(x, torch.randn(4, 3)), plain(x))
    with pytest.raises(ValueError, match="no context input"):
        plain(x, torch.randn(4, 3))
    with pytest.raises(ValueError, match="context_features=3"):
        conditional(x)


@pytest.mark.parametrize("hidden", [(12,), ()])
def test_made_context_keeps_the_autoregressive_property(hidden):
    d = 4
    net = MADENetwork(d, 2, hidden, order="random", seed=1, context_features=3).double()
    x = torch.randn(3, d, dtype=torch.float64, requires_grad=True)
    ctx = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    pos = torch.empty(d, dtype=torch.long)
    pos[net.order()] = torch.arange(d)
    for i in range(d):
        gx, gc = torch.autograd.grad(net(x, ctx)[:, i].sum(), (x, ctx))
        assert (gx[:, pos >= pos[i]] == 0).all()
        assert gc.abs().sum() > 0  # every output sees the context
