"""Tests for deepgen.metrics.inception, the FID Inception-v3 (random weights: nothing is downloaded)."""

import json
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepgen.download import file_digest
from deepgen.errors import CheckpointError, DataError
from deepgen.metrics import inception
from deepgen.metrics.inception import (
    FID_WEIGHTS_NAME,
    FID_WEIGHTS_SHA256,
    FID_WEIGHTS_URL,
    FIDInceptionA,
    FIDInceptionC,
    FIDInceptionE_1,
    FIDInceptionE_2,
    FIDInceptionV3,
    load_fid_inception,
)

# The expected (key, shape) table was written from the published architecture, not dumped from
# FIDInceptionV3: a throwaway script listed every BasicConv2d by hand, with (in, out, kernel) taken
# from torchvision/models/inception.py (Inception3.__init__ and InceptionA..E), applied pytorch-fid's
# changes (src/pytorch_fid/inception.py: num_classes=1008, aux_logits=False) and emitted, per conv,
# conv.weight (out, in, kh, kw), bn.{weight, bias, running_mean, running_var} (out,) and the buffer
# bn.num_batches_tracked (); then fc.weight (1008, 2048) and fc.bias (1008,). Its 94 conv blocks
# match, name for name, the TF -> PyTorch map in torch-fidelity's
# utils/util_convert_inception_weights.py, the script that made the 6726825d weights file.
TABLE = json.loads((Path(__file__).parent / "data" / "fid_inception_state_dict.json").read_text())
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")

# Parameter count: torchvision documents 27,161,264 parameters for inception_v3 (1000 classes, with
# the auxiliary classifier). The FID network drops AuxLogits (conv0 768->128 1x1 + BN, conv1
# 128->768 5x5 + BN, fc 768->1000) and has 8 more classes in fc (2048 weights + 1 bias each).
TORCHVISION_INCEPTION_V3_PARAMS = 27_161_264
AUX_PARAMS = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
FID_INCEPTION_PARAMS = TORCHVISION_INCEPTION_V3_PARAMS - AUX_PARAMS + 8 * (2048 + 1)


def _randomise(model: nn.Module) -> nn.Module:
    """Weights that keep activations O(1) through the 94 layers, so outputs depend on them."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.8, 1.2)
                m.bias.uniform_(-0.1, 0.1)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.8, 1.2)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=2048**-0.5)
                nn.init.normal_(m.bias, std=0.1)
    return model


@pytest.fixture(scope="module")
def model() -> FIDInceptionV3:
    torch.manual_seed(0)
    return _randomise(FIDInceptionV3())


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory) -> Path:
    """The module fixture's state dict written with torch.save (about 96 MB)."""
    path = tmp_path_factory.mktemp("fid") / "weights.pth"
    torch.save(model.state_dict(), path)
    return path


def test_state_dict_keys_and_shapes_match_published_table():
    expected = {key: list(shape) for key, shape in TABLE["entries"]}
    assert len(expected) == len(TABLE["entries"]) == 6 * TABLE["num_basic_conv2d"] + 2
    assert TABLE["num_basic_conv2d"] == 94
    got = {key: list(t.shape) for key, t in FIDInceptionV3().state_dict().items()}
    assert sorted(set(got) - set(expected)) == []
    assert sorted(set(expected) - set(got)) == []
    assert {k: v for k, v in got.items() if v != expected[k]} == {}
    assert not any("AuxLogits" in k for k in got)


def test_basic_conv2d_is_biasless_conv_and_tf_batchnorm():
    model = FIDInceptionV3()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(convs) == len(norms) == 94
    assert all(c.bias is None for c in convs)
    assert all(n.eps == 0.001 for n in norms)  # TensorFlow's batch-norm epsilon
    assert not model.training  # a feature extractor: BatchNorm uses its running statistics


def test_parameter_count():
    assert FID_INCEPTION_PARAMS == 23_850_960
    from_table = sum(torch.Size(shape).numel() for key, shape in TABLE["entries"] if not key.endswith(BUFFER_SUFFIXES))
    assert from_table == FID_INCEPTION_PARAMS
    assert sum(p.numel() for p in FIDInceptionV3().parameters()) == FID_INCEPTION_PARAMS
    assert FIDInceptionV3.feature_dim == 2048


def test_weights_constants():
    assert FID_WEIGHTS_NAME == "pt_inception-2015-12-05-6726825d.pth"
    assert FID_WEIGHTS_URL == (
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + FID_WEIGHTS_NAME
    )
    assert re.fullmatch(r"[0-9a-f]{64}", FID_WEIGHTS_SHA256)
    # torch.hub convention: the suffix of the file name is the start of its SHA-256
    assert FID_WEIGHTS_SHA256.startswith(FID_WEIGHTS_NAME.rsplit("-", 1)[1].removesuffix(".pth"))


@pytest.mark.parametrize("channels, size", [(1, 28), (3, 32)])
def test_output_shapes_and_values(model, channels, size):
    torch.manual_seed(1)
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        features, logits = model.features_and_logits(x)
        assert torch.equal(model(x), features)
        assert torch.equal(model.logits(x), logits)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert torch.isfinite(features).all() and torch.isfinite(logits).all()
    assert (features >= 0).all()  # average of ReLU outputs
    assert not torch.allclose(features[0], features[1])  # depends on the image
    if channels == 1:  # grey is the same as the grey value in all three channels
        with torch.no_grad():
            torch.testing.assert_close(model(x.repeat(1, 3, 1, 1)), features)


def test_intermediate_shapes_at_299(model):
    # The shapes noted in torchvision's Inception3._forward for a 299x299 input.
    expected = {
        "Conv2d_1a_3x3": (32, 149, 149),
        "Conv2d_2b_3x3": (64, 147, 147),
        "Conv2d_4a_3x3": (192, 71, 71),
        "Mixed_5b": (256, 35, 35),
        "Mixed_5d": (288, 35, 35),
        "Mixed_6a": (768, 17, 17),
        "Mixed_6e": (768, 17, 17),
        "Mixed_7a": (1280, 8, 8),
        "Mixed_7b": (2048, 8, 8),
        "Mixed_7c": (2048, 8, 8),
    }
    seen = {}
    hooks = [
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape[1:]))
        )
        for name in expected
    ]
    try:
        with torch.no_grad():
            x = torch.rand(1, 3, 299, 299)
            out = model(x)
    finally:
        for hook in hooks:
            hook.remove()
    assert seen == expected
    # a 299x299 input is not changed by the resize, only mapped to [-1, 1]
    torch.testing.assert_close(model.preprocess(x), 2 * x - 1)
    assert out.shape == (1, 2048)


@pytest.mark.parametrize(
    "make, kind",
    [
        (lambda: FIDInceptionA(192, pool_features=32), "avg"),
        (lambda: FIDInceptionC(768, channels_7x7=128), "avg"),
        (lambda: FIDInceptionE_1(1280), "avg"),
        (lambda: FIDInceptionE_2(2048), "max"),
    ],
)
def test_pool_branch_is_the_tensorflow_one(make, kind):
    """With the 1x1 conv of the pool branch removed, the last C_in channels are the pooled input."""
    torch.manual_seed(2)
    block = make().eval()
    c_in = block.branch_pool.conv.in_channels
    block.branch_pool = nn.Identity()
    x = torch.randn(1, c_in, 5, 5)
    with torch.no_grad():
        pooled = block(x)[:, -c_in:]
    if kind == "max":
        expected = F.max_pool2d(x, 3, stride=1, padding=1)
    else:
        expected = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        with_pad = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)
        assert not torch.allclose(pooled, with_pad)
    torch.testing.assert_close(pooled, expected)


def test_bad_inputs_raise_data_error(model):
    for bad in (torch.rand(2, 2, 8, 8), torch.rand(3, 8, 8), torch.zeros(1, 3, 8, 8, dtype=torch.uint8)):
        with pytest.raises(DataError):
            model(bad)


def test_load_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found") as info:
        load_fid_inception(tmp_path / FID_WEIGHTS_NAME, check_hash=False)
    assert "\n" not in str(info.value)


def test_load_tiny_dict(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="missing") as info:
        load_fid_inception(path, check_hash=False)
    assert "\n" not in str(info.value)


def test_load_not_a_dict_or_not_a_checkpoint(tmp_path):
    tensor_file, junk_file = tmp_path / "tensor.pth", tmp_path / "junk.pth"
    torch.save(torch.zeros(3), tensor_file)
    junk_file.write_bytes(b"this is not a torch file\n" * 10)
    for path in (tensor_file, junk_file):
        with pytest.raises(CheckpointError) as info:
            load_fid_inception(path, check_hash=False)
        assert "\n" not in str(info.value)


def test_load_wrong_shape(tmp_path):
    # zero-strided views: torch.save stores one element per tensor, so the file stays tiny
    state = {k: torch.zeros((), dtype=v.dtype).expand(v.shape) for k, v in FIDInceptionV3().state_dict().items()}
    state["fc.weight"] = torch.zeros(()).expand(1000, 2048)
    path = tmp_path / "wrong_shape.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="wrong shape: fc.weight"):
        load_fid_inception(path, check_hash=False)


def test_round_trip_gives_identical_outputs(model, saved):
    loaded = load_fid_inception(saved, check_hash=False)
    assert not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    torch.manual_seed(3)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        fresh = FIDInceptionV3()(x)
    assert not torch.allclose(fresh, model(x))  # the weights really came from the file


def test_state_dict_without_num_batches_tracked_loads(model, tmp_path):
    # The TF-converted weights file holds only conv/bn/fc tensors, no num_batches_tracked buffers.
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "no_counters.pth"
    torch.save(state, path)
    loaded = load_fid_inception(path, check_hash=False)
    for key, value in model.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded.state_dict()[key], value), key


def test_checksum_is_checked(saved, monkeypatch):
    with pytest.raises(CheckpointError, match="SHA-256") as info:
        load_fid_inception(saved)  # random weights: not the standard file
    assert "\n" not in str(info.value)
    monkeypatch.setattr(inception, "FID_WEIGHTS_SHA256", file_digest(saved))
    assert isinstance(load_fid_inception(saved), FIDInceptionV3)
