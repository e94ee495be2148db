"""Masked layers keep their weights; MADE and PixelCNN masks give the autoregressive property."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepgen.nn import MaskedConv2d, MaskedLinear, made_degrees, made_masks, pixelcnn_mask


def _step(layer, x, opt_cls):
    opt = opt_cls(layer.parameters(), lr=0.1)
    layer(x).pow(2).sum().backward()
    grad = layer.weight.grad.clone()
    opt.step()
    return grad


@pytest.mark.parametrize("opt_cls", [torch.optim.SGD, torch.optim.Adam])
def test_masked_linear_never_changes_masked_weights(opt_cls):
    torch.manual_seed(0)
    mask = (torch.rand(5, 4) > 0.5).float()
    layer = MaskedLinear(4, 5, mask)
    w0 = layer.weight.detach().clone()
    x = torch.randn(8, 4)
    out = layer(x)
    assert torch.equal(layer.weight, w0)  # forward writes nothing
    assert torch.allclose(out, x @ (w0 * mask).T + layer.bias)
    grad = _step(layer, x, opt_cls)
    off = mask == 0
    assert (grad[off] == 0).all() and (grad[~off] != 0).any()
    assert torch.equal(layer.weight[off], w0[off])  # masked weights keep their values
    assert not torch.equal(layer.weight[~off], w0[~off])  # the others learned
    # re-enabling a connection uses its stored (non-zero) weight: nothing was zeroed for good
    layer.set_mask(torch.ones(5, 4))
    assert torch.allclose(layer(x), x @ layer.weight.T + layer.bias)
    assert (layer.weight[off] != 0).all()


def test_masked_conv_keeps_weights_and_checks_mask_shape():
    torch.manual_seed(0)
    conv = MaskedConv2d(2, 3, 3, mask=pixelcnn_mask(3, "A"), padding=1)
    assert conv.mask.shape == conv.weight.shape  # the (k, k) mask broadcast to the kernel
    w0 = conv.weight.detach().clone()
    grad = _step(conv, torch.randn(2, 2, 5, 5), torch.optim.SGD)
    off = conv.mask == 0
    assert (grad[off] == 0).all() and torch.equal(conv.weight[off], w0[off])
    with pytest.raises(ValueError, match="broadcast"):
        conv.set_mask(torch.ones(4, 4))
    with pytest.raises(ValueError, match="does not match"):
        MaskedLinear(3, 2, torch.ones(3, 2))
    assert "mask" in conv.state_dict()  # a buffer: saved and moved with the model


def _made(d, hidden, per_dim=1, **kw):
    degrees = made_degrees(d, hidden, **kw)
    masks = made_masks(degrees, degrees[0].repeat(per_dim))
    dims = [d, *hidden, d * per_dim]
    layers = []
    for i, m in enumerate(masks):
        layers.append(MaskedLinear(dims[i], dims[i + 1], m))
        if i < len(masks) - 1:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers), degrees[0]


@pytest.mark.parametrize(
    "kw",
    [
        {"strategy": "cyclic"},
        {"generator": torch.Generator().manual_seed(3)},
        {"order": [3, 0, 4, 1, 2], "strategy": "cyclic"},
    ],
)
def test_made_output_depends_only_on_earlier_inputs(kw):
    torch.manual_seed(0)
    d = 5
    net, deg = _made(d, (32, 32), per_dim=2, **kw)
    jac = torch.autograd.functional.jacobian(lambda v: net(v.unsqueeze(0))[0], torch.randn(d))  # (2D, D)
    out_deg = deg.repeat(2)
    forbidden = out_deg[:, None] <= deg[None, :]
    assert (jac[forbidden] == 0).all()
    if kw.get("strategy") == "cyclic":  # every degree is present: every allowed connection exists
        assert (jac[~forbidden] != 0).all()
    assert (jac[out_deg == 1] == 0).all()  # the first variable in the ordering sees nothing


def test_made_degrees_follow_the_paper():
    deg = made_degrees(4, (50, 50), order=[2, 0, 3, 1], generator=torch.Generator().manual_seed(0))
    assert deg[0].tolist() == [2, 4, 1, 3]  # input order[i] has degree i + 1
    assert all(int(m.min()) >= 1 and int(m.max()) <= 3 for m in deg[1:])  # hidden degrees in [1, D - 1]
    with pytest.raises(ValueError, match="permutation"):
        made_degrees(3, (4,), order=[0, 0, 1])
    # no hidden layer: a direct strictly-lower-triangular connection
    (m,) = made_masks(made_degrees(3, ()))
    assert torch.equal(m, torch.tril(torch.ones(3, 3), -1))


def test_pixelcnn_mask_types_and_centre():
    a, b = pixelcnn_mask(5, "A")[0, 0], pixelcnn_mask(5, "B")[0, 0]
    assert a[2, 2] == 0 and b[2, 2] == 1
    for m in (a, b):
        assert m[:2].eq(1).all() and m[2, :2].eq(1).all()  # rows above, pixels to the left
        assert m[3:].eq(0).all() and m[2, 3:].eq(0).all()  # rows below, pixels to the right
    # RGB groups at the centre: A: R <- none, G <- R, B <- R, G; B adds each group itself
    ca = pixelcnn_mask(3, "A", 3, 6, channel_groups=3)[:, :, 1, 1]
    cb = pixelcnn_mask(3, "B", 6, 6, channel_groups=3)[:, :, 1, 1]
    assert ca.tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 0]]
    assert torch.equal(cb, torch.tril(torch.ones(3, 3)).repeat_interleave(2, 0).repeat_interleave(2, 1))
    with pytest.raises(ValueError, match="odd"):
        pixelcnn_mask(4, "A")
    with pytest.raises(ValueError, match="channel groups"):
        pixelcnn_mask(3, "B", 3, 4, channel_groups=3)


def test_pixelcnn_stack_is_causal():
    """Output pixel (i, j) of an A-then-B stack sees only pixels before it in raster order."""
    torch.manual_seed(0)
    net = nn.Sequential(
        MaskedConv2d(1, 4, 3, pixelcnn_mask(3, "A", 1, 4), padding=1),
        nn.Tanh(),
        MaskedConv2d(4, 1, 3, pixelcnn_mask(3, "B", 4, 1), padding=1),
    )
    x = torch.randn(1, 1, 5, 5, requires_grad=True)
    i, j = 2, 2
    net(x)[0, 0, i, j].backward()
    seen = x.grad[0, 0] != 0
    after = torch.arange(25).view(5, 5) >= i * 5 + j
    assert not seen[after].any() and seen.any()
