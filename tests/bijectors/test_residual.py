"""Invertible residual blocks: spectral norms, Lipschitz branches, fixed-point inverse, log-det estimators."""

from __future__ import annotations

import copy

import pytest
import torch

from deepgen.bijectors.residual import (
    SAFETY,
    LipSwish,
    ResidualBlock,
    SpectralNormConv2d,
    SpectralNormLinear,
    converge_spectral_norms,
    lipschitz_convnet,
    lipschitz_mlp,
    set_log_det_mode,
)
from deepgen.errors import ConfigError

D64 = torch.float64


@pytest.fixture(autouse=True)
def _seed():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        yield


def _scale_weights(module, factor):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight"):
                p.mul_(factor)
    return module


def _conv_matrix(layer: SpectralNormConv2d, shape) -> torch.Tensor:
    """The explicit matrix of the (bias-free) convolution with the normalised weight on images ``shape``."""
    weight = layer.normalised_weight().detach()
    n = torch.Size(shape).numel()
    basis = torch.eye(n, dtype=D64).reshape(n, *shape)
    cols = torch.nn.functional.conv2d(basis, weight, stride=layer.stride, padding=layer.padding)
    return cols.reshape(n, -1).t()


# -- spectral normalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 3), (16, 16), (3, 20)])
def test_linear_spectral_norm_is_at_most_coeff_after_convergence(shape):
    layer = _scale_weights(SpectralNormLinear(shape[1], shape[0], coeff=0.9), 5.0).double()
    layer.eval()  # converges the power iteration
    norm = torch.linalg.matrix_norm(layer.normalised_weight().detach(), ord=2)
    assert 0.9 * (1 - 2 * SAFETY) <= norm <= 0.9


def test_linear_spectral_norm_only_shrinks():
    layer = _scale_weights(SpectralNormLinear(4, 4, coeff=0.97), 0.1).double().eval()
    assert torch.linalg.matrix_norm(layer.weight, ord=2) < 0.5
    assert torch.equal(layer.normalised_weight(), layer.weight)


@pytest.mark.parametrize("stride, size", [(1, 5), (2, 6)])
def test_conv_spectral_norm_is_the_operator_norm(stride, size):
    layer = _scale_weights(SpectralNormConv2d(2, 3, 3, stride=stride, padding=1, coeff=0.9), 4.0).double()
    layer(torch.zeros(1, 2, size, size, dtype=D64))  # sizes the vectors
    layer.eval()
    converge_spectral_norms(layer, tol=1e-13)
    op_norm = torch.linalg.matrix_norm(_conv_matrix(layer, (2, size, size)), ord=2)
    assert 0.9 * (1 - 2 * SAFETY) <= op_norm <= 0.9
    # the reshaped kernel's norm is another number: normalising it would not bound the operator
    kernel_norm = torch.linalg.matrix_norm(layer.normalised_weight().detach().reshape(3, -1), ord=2)
    assert abs(kernel_norm - op_norm) > 0.01


def test_training_runs_one_power_step_per_forward_and_eval_none():
    layer = SpectralNormLinear(4, 3).double()
    with torch.no_grad():
        layer.weight.add_(torch.randn(3, 4, dtype=D64))  # the stored vectors are now stale
    v = layer.v.clone()
    layer(torch.randn(2, 4, dtype=D64))
    want = layer.weight.t() @ torch.nn.functional.normalize(layer.weight @ v, dim=0)
    assert torch.allclose(layer.v, want / want.norm())
    layer.eval()
    v = layer.v.clone()
    layer(torch.randn(2, 4, dtype=D64))
    assert torch.equal(layer.v, v)
    assert {"u", "v"} <= set(dict(layer.named_buffers()))


def test_checkpoints_restore_the_power_iteration_vectors():
    g = lipschitz_convnet(2, 4)
    x = torch.randn(3, 2, 5, 5)
    g(x)  # training step: sizes and updates the vectors
    g.eval()
    fresh = lipschitz_convnet(2, 4).eval()  # never saw an input: its conv vectors are unsized
    fresh.load_state_dict(g.state_dict())
    assert fresh[0].v.shape == (2, 5, 5) and fresh[4].u.shape == (2, 5, 5)
    assert torch.equal(fresh(x), g(x))


# -- Lipschitz branches -------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.1, 1.0, 10.0])
def test_lipswish_is_1_lipschitz(beta):
    x = torch.linspace(-20 / beta, 20 / beta, 20001, dtype=D64, requires_grad=True)
    (d,) = torch.autograd.grad(LipSwish(beta).double()(x).sum(), x)
    assert d.abs().max() <= 1.0
    assert d.max() > 0.99  # the 1.1 is tight


def test_branches_are_contractions():
    mlp = _scale_weights(lipschitz_mlp(3, hidden=(8, 8), coeff=0.9), 4.0).double().eval()
    x = torch.randn(16, 3, dtype=D64) * 2
    jac = torch.stack([torch.autograd.functional.jacobian(lambda v: mlp(v[None])[0], xi) for xi in x])
    assert torch.linalg.matrix_norm(jac, ord=2).max() <= 0.9**3
    conv = _scale_weights(lipschitz_convnet(1, 3, coeff=0.9), 4.0).double()
    img = torch.randn(1, 1, 4, 4, dtype=D64)
    conv(img)
    conv.eval()
    jac = torch.autograd.functional.jacobian(lambda v: conv(v.reshape(1, 1, 4, 4)).reshape(-1), img.reshape(-1))
    assert torch.linalg.matrix_norm(jac, ord=2) <= 0.9**3


def test_lipschitz_convnet_needs_an_odd_kernel():
    with pytest.raises(ConfigError, match="odd"):
        lipschitz_convnet(2, 4, kernel_size=2)


# -- the residual block -------------------------------------------------------------------------------


def _mlp_block(d=3, factor=1.0, **kw):
    return ResidualBlock(_scale_weights(lipschitz_mlp(d, hidden=(16, 16)), factor), **kw).double()


@pytest.mark.parametrize("training", [False, True])
def test_fixed_point_inverse_to_1e_10_in_float64(training):
    for block, x in [
        (_mlp_block(4, factor=3.0), torch.randn(8, 4, dtype=D64) * 2),
        (ResidualBlock(_scale_weights(lipschitz_convnet(2, 6), 3.0)).double(), torch.randn(3, 2, 4, 4, dtype=D64)),
    ]:
        block.train(training)
        z, ld = block(x)
        buffers = [b.clone() for b in block.buffers()]
        x2, ild = block.inverse(z)  # in training mode the inverse must not move the spectral norms
        assert (x2 - x).abs().max() < 1e-10
        assert (ild + ld).abs().max() < 1e-10
        assert all(torch.equal(a, b) for a, b in zip(buffers, block.buffers()))
        assert not x2.requires_grad


def test_exact_log_det_is_the_jacobian_log_det_and_differentiable():
    block = _mlp_block(2, factor=3.0).eval()
    x = torch.randn(5, 2, dtype=D64)
    z, ld = block(x)
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda v: block(v[None])[0][0], x[i], create_graph=True)
        want = torch.linalg.slogdet(jac).logabsdet
        assert torch.allclose(ld[i], want)
        params = list(block.parameters())
        got_grad = torch.autograd.grad(ld[i], params, retain_graph=True, allow_unused=True, materialize_grads=True)
        want_grad = torch.autograd.grad(want, params, allow_unused=True, materialize_grads=True)
        assert all(torch.allclose(a, b) for a, b in zip(got_grad, want_grad))


def _estimates(block, x, calls, copies):
    """(calls, B) per-call means over ``copies`` repeats of each example (one roulette draw per call)."""
    xb = x.repeat(copies, 1)
    with torch.no_grad():
        return torch.stack([block(xb)[1].reshape(copies, -1).mean(0) for _ in range(calls)])


@pytest.mark.parametrize(
    "mode, kw",
    [
        ("series", dict(n_terms=25)),
        ("roulette", dict()),
        ("roulette", dict(n_exact_terms=0, geometric_p=0.3, probe="rademacher", n_probes=2)),
    ],
)
def test_stochastic_log_dets_are_within_3_standard_errors_of_exact(mode, kw):
    block = _mlp_block(3, factor=2.0).eval()
    x = torch.randn(4, 3, dtype=D64)
    exact = block(x)[1]
    block.log_det_mode = mode
    for k, v in kw.items():
        setattr(block, k, v)
    block.generator = torch.Generator().manual_seed(1)
    est = _estimates(block, x, calls=300, copies=8)
    mean, se = est.mean(0), est.std(0) / est.shape[0] ** 0.5
    assert (se < 0.05).all() and (se > 0).all()  # a meaningful test: the estimator has a small spread
    assert ((mean - exact).abs() < 3 * se).all(), (mean, exact, se)


def test_roulette_is_reproducible_with_a_generator_and_uses_the_global_rng_without():
    block = _mlp_block(2, log_det="roulette").eval()
    x = torch.randn(6, 2, dtype=D64)
    runs = []
    for _ in range(2):
        block.generator = torch.Generator().manual_seed(5)
        runs.append(torch.cat([block(x)[1] for _ in range(5)]))
    assert torch.equal(*runs)
    block.generator = None
    torch.manual_seed(3)
    a = block(x)[1]
    torch.manual_seed(3)
    assert torch.equal(a, block(x)[1])


def test_gradients_flow_through_the_roulette_estimator():
    block = ResidualBlock(lipschitz_convnet(2, 4), log_det="roulette", n_exact_terms=1).train()
    z, ld = block(torch.randn(4, 2, 4, 4))
    (0.5 * z.square().sum() - ld.sum()).backward()
    grads = [p.grad for p in block.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


def test_no_grad_outputs_carry_no_graph():
    block = _mlp_block(2, log_det="series")
    with torch.no_grad():
        z, ld = block(torch.randn(3, 2, dtype=D64))
    assert not z.requires_grad and not ld.requires_grad


def test_modes_switch_on_a_built_model_and_exact_refuses_large_inputs():
    block = ResidualBlock(lipschitz_convnet(1, 2), log_det="exact")
    assert block.log_det_is_exact
    x = torch.randn(2, 1, 17, 17)  # 289 entries per example
    with pytest.raises(ConfigError, match="exact_max_dim=256"):
        block(x)
    model = torch.nn.Sequential(block)
    set_log_det_mode(model, "series")
    assert block.log_det_mode == "series" and not block.log_det_is_exact
    assert block(x)[1].shape == (2,)
    with pytest.raises(ConfigError, match="roulette"):
        block.log_det_mode = "hutchinson"
    with pytest.raises(ConfigError):
        ResidualBlock(lipschitz_mlp(2), geometric_p=1.0)


def test_the_block_can_be_copied():
    block = _mlp_block(2, log_det="roulette", generator=torch.Generator().manual_seed(0))
    twin = copy.deepcopy(block)
    x = torch.randn(3, 2, dtype=D64)
    assert torch.equal(block.eval()(x)[0], twin.eval()(x)[0])


def test_two_training_forwards_then_one_backward():
    """The power step updates the stored vectors in place; the graph of the first forward must not
    hold the buffer itself (an importance-weighted bound calls the flow several times per step)."""
    layer = SpectralNormLinear(4, 3)
    x = torch.randn(5, 4)
    (layer(x).sum() + layer(x).sum()).backward()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()
    conv = SpectralNormConv2d(2, 2, 3, padding=1)
    xc = torch.randn(2, 2, 4, 4)
    (conv(xc).sum() + conv(xc).sum()).backward()
    assert torch.isfinite(conv.weight.grad).all()
