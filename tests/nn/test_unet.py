"""The U-Net: shapes at any image size, zero output at init, time and class conditioning, one-line
errors, gradients everywhere, attention where asked, and the same network as diffusers' UNet2DModel."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from deepgen.config import from_dict, to_dict
from deepgen.errors import ConfigError, DataError
from deepgen.nn import UNet, UNetConfig, diffusers_equivalent, load_diffusers_weights, timestep_embedding
from deepgen.nn.unet import SelfAttention, group_count

TINY = dict(channels=(8, 16), layers_per_block=1)


def _perturbed(net: UNet, seed: int = 0) -> UNet:
    """A copy of ``net`` whose every parameter got seeded noise (so the zero output conv is not zero)."""
    net = copy.deepcopy(net)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return net


def _params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize(
    ("size", "c", "options"),
    [
        ((8, 8), 1, {}),
        ((28, 28), 1, {"channels": (8, 16, 16), "attention_levels": (2,)}),  # 28 -> 14 -> 7 -> 4 and back
        ((32, 32), 3, {"attention_levels": (0, 1), "attention_head_dim": 4}),
        ((7, 9), 3, {"channels": (8, 8, 16), "attention_levels": (1,)}),  # odd: 7x9 -> 4x5 -> 2x3
        ((28, 28), 1, {"out_channels": 2}),  # 2x channels: mean and variance
        ((9, 9), 3, {"out_channels": 6, "scale_shift": True, "num_classes": 3}),
    ],
)
def test_output_shape_at_any_image_size(size, c, options):
    net = _perturbed(UNet(in_channels=c, **{**TINY, **options}))
    x = torch.randn(2, c, *size)
    y = torch.tensor([0, 3]) if options.get("num_classes") else None
    out = net(x, torch.tensor([3.0, 700.0]), y)
    assert out.shape == (2, options.get("out_channels", c), *size)
    assert torch.isfinite(out).all()


def test_zero_initialised_output_is_exactly_zero():
    net = UNet(in_channels=3, num_classes=4, attention_levels=(1,), **TINY)
    out = net(torch.randn(3, 3, 12, 12), torch.tensor([0.0, 0.5, 999.0]), torch.tensor([0, 2, 4]))
    assert out.shape == (3, 3, 12, 12) and torch.count_nonzero(out) == 0
    assert torch.count_nonzero(UNet(zero_init=False, **TINY)(torch.randn(1, 1, 8, 8), torch.zeros(1))) > 0


def test_time_and_class_change_the_output_and_the_null_class_works():
    net = _perturbed(UNet(num_classes=3, **TINY))
    x = torch.randn(1, 1, 8, 8).expand(4, -1, -1, -1)
    t = torch.full((4,), 100.0)
    with torch.no_grad():
        by_t = net(x, torch.tensor([0.0, 1.0, 100.0, 999.0]), torch.zeros(4, dtype=torch.long))
        by_y = net(x, t, torch.tensor([0, 1, 2, 3]))  # 3 = no class
        unlabelled = net(x, t)  # y=None: the null class for the whole batch
    for out in (by_t, by_y):
        for i in range(4):
            for j in range(i):
                assert not torch.allclose(out[i], out[j], atol=1e-4), (i, j)
    assert torch.allclose(unlabelled, by_y[3:].expand(4, -1, -1, -1), atol=1e-6)
    # a scalar t (or a float) is the same time for the whole batch
    y = torch.tensor([0, 1, 2, 3])
    assert torch.allclose(net(x, torch.tensor(100.0), y), by_y, atol=1e-6)
    assert torch.allclose(net(x, 100.0, y), by_y, atol=1e-6)


def _blocks_seeing_time(net: UNet) -> list[bool]:
    """For every residual block: does its output change with the embedding, its input fixed?"""
    g = torch.Generator().manual_seed(1)
    emb_dim = net.time_mlp[-1].out_features
    out = []
    for block in (b for part in (*net.down, net.mid, *net.up) for b in getattr(part, "blocks", part)):
        x = torch.randn(2, block.conv1.in_channels, 6, 6, generator=g)
        e1, e2 = torch.randn(2, 2, emb_dim, generator=g)
        with torch.no_grad():
            out.append(not torch.allclose(block(x, e1), block(x, e2), atol=1e-4))
    return out


def test_every_block_sees_the_time_with_the_default_groups():
    """The embedding is added before a GroupNorm: one channel per group would remove it entirely."""
    net = _perturbed(UNet(channels=(8, 32), layers_per_block=2))
    seen = _blocks_seeing_time(net)
    assert len(seen) == 2 * 2 + 2 + 2 * 3 and all(seen)
    one_channel_groups = _perturbed(UNet(channels=(8, 32), layers_per_block=2, norm_groups=32))
    assert not any(_blocks_seeing_time(one_channel_groups))  # the pitfall the default avoids


def test_sampling_path_matches_the_training_path():
    """Under no_grad the SiLUs run in place; the outputs must be those of the graph-recording path."""
    net = _perturbed(UNet(attention_levels=(1,), num_classes=2, scale_shift=True, **TINY))
    x, t, y = torch.randn(3, 1, 10, 10), torch.tensor([1.0, 50.0, 900.0]), torch.tensor([0, 1, 2])
    with_grad = net(x, t, y)
    with torch.no_grad():
        without = net(x, t, y)
    assert torch.equal(with_grad.detach(), without)


def test_bad_labels_and_inputs_are_one_line_errors():
    x, t = torch.randn(2, 1, 8, 8), torch.zeros(2)
    with pytest.raises(ConfigError, match="unconditional") as e:
        UNet(**TINY)(x, t, torch.tensor([0, 1]))
    assert "\n" not in str(e.value)
    net = UNet(num_classes=3, **TINY)
    for bad in ([0, 4], [-1, 0]):
        with pytest.raises(DataError, match=r"0\.\.3") as e:
            net(x, t, torch.tensor(bad))
        assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="x must be"):
        net(torch.randn(2, 3, 8, 8), t)
    with pytest.raises(DataError, match="t must have shape"):
        net(x, torch.zeros(3))
    with pytest.raises(ConfigError, match="attention_levels"):
        UNet(attention_levels=(2,), **TINY)
    with pytest.raises(ConfigError, match="attention_head_dim"):
        UNet(attention_levels=(0,), attention_head_dim=3, **TINY)
    with pytest.raises(ConfigError, match="unexpected keyword"):
        UNet(chanels=(8, 16))


@pytest.mark.parametrize("scale_shift", [False, True])
def test_gradients_reach_every_parameter(scale_shift):
    net = _perturbed(
        UNet(num_classes=2, attention_levels=(0, 1), attention_head_dim=4, scale_shift=scale_shift, **TINY)
    )
    out = net(torch.randn(3, 1, 9, 9), torch.tensor([5.0, 300.0, 800.0]), torch.tensor([0, 1, 2]))
    out.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


def test_second_derivatives_for_energy_based_models():
    """Gradient penalties and score matching differentiate d(out)/dx again: exact, in float64. PyTorch's
    CPU flash attention has no double backward, so attention runs under the math backend here."""
    net = _perturbed(UNet(channels=(4, 8), layers_per_block=1, attention_levels=(1,), num_classes=2)).double()
    x = torch.randn(1, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    t, y = torch.tensor([40.0], dtype=torch.float64), torch.tensor([1])
    with sdpa_kernel(SDPBackend.MATH):
        assert torch.autograd.gradgradcheck(lambda x: net(x, t, y), (x,))


def _attention_params(c: int) -> int:
    return 2 * c + (3 * c * c + 3 * c) + (c * c + c)  # GroupNorm, fused qkv, output projection


@pytest.mark.parametrize("layers", [1, 2])
def test_attention_levels_and_mid_attention_add_the_expected_modules(layers):
    base = dict(channels=(8, 16, 32), layers_per_block=layers)
    plain = UNet(mid_attention=False, **base)
    assert not any(isinstance(m, SelfAttention) for m in plain.modules())
    mid = UNet(mid_attention=True, **base)
    assert _params(mid) - _params(plain) == _attention_params(32)
    assert mid.mid[0].attn is not None and mid.mid[1].attn is None
    at1 = UNet(mid_attention=False, attention_levels=(1,), **base)
    # level 1: `layers` blocks on the way down, `layers + 1` on the way up, each followed by attention
    assert sum(isinstance(m, SelfAttention) for m in at1.modules()) == 2 * layers + 1
    assert _params(at1) - _params(plain) == (2 * layers + 1) * _attention_params(16)
    assert all(b.attn is not None for b in at1.down[1].blocks) and all(b.attn is not None for b in at1.up[1].blocks)
    assert all(b.attn is None for level in (at1.down[0], at1.down[2], at1.up[0], at1.up[2]) for b in level.blocks)
    heads = UNet(mid_attention=False, attention_levels=(1,), attention_head_dim=4, **base)
    assert _params(heads) == _params(at1) and heads.down[1].blocks[0].attn.heads == 4


def test_config_round_trips_and_groups_divide_the_channels():
    cfg = UNetConfig(in_channels=3, channels=(12, 24), attention_levels=(1,), num_classes=10)
    assert from_dict(UNetConfig, to_dict(cfg)) == cfg
    assert UNet(cfg).config == cfg
    assert [group_count(c) for c in (3, 7, 8, 12, 48, 64, 96, 128, 256)] == [1, 1, 2, 3, 12, 16, 24, 32, 32]
    assert [group_count(c, 32) for c in (7, 8, 12, 48, 64, 96)] == [7, 8, 12, 24, 32, 32]
    net = UNet(cfg)
    assert all(m.num_channels % m.num_groups == 0 for m in net.modules() if isinstance(m, torch.nn.GroupNorm))


def test_timestep_embedding_is_the_transformer_sinusoid():
    t = torch.tensor([0.0, 3.0, 999.0])
    emb = timestep_embedding(t, 6)
    freqs = torch.tensor([1.0, 10000 ** (-1 / 3), 10000 ** (-2 / 3)])
    expected = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], 1)
    assert torch.allclose(emb, expected, atol=1e-5)
    assert timestep_embedding(t, 7).shape == (3, 7) and torch.all(timestep_embedding(t, 7)[:, -1] == 0)


@pytest.mark.parametrize("attention", [True, False])
def test_same_network_as_diffusers_unet2dmodel(attention):
    diffusers = pytest.importorskip("diffusers")
    ours_cfg, theirs_kwargs = diffusers_equivalent(attention)
    torch.manual_seed(0)
    theirs = diffusers.UNet2DModel(**theirs_kwargs).eval()
    ours = UNet(ours_cfg)
    assert abs(_params(ours) - _params(theirs)) <= 0.1 * _params(theirs)
    assert _params(ours) == _params(theirs)  # the same layers, not just a similar count
    assert sum(isinstance(m, SelfAttention) for m in ours.modules()) == (4 if attention else 0)
    load_diffusers_weights(ours, theirs.state_dict())
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([7.0, 640.0])
    with torch.no_grad():
        expected = theirs(x, t).sample
        assert torch.allclose(ours(x, t), expected, atol=1e-5), (ours(x, t) - expected).abs().max()
    with pytest.raises(ConfigError, match="not the same architecture"):
        load_diffusers_weights(UNet(diffusers_equivalent(not attention)[0]), theirs.state_dict())
