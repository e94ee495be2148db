"""The latent-space capability (``encode``/``decode``, ``interpolate``, ``traverse``) and ``deepgen latent``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepgen.cli import main
from deepgen.errors import ConfigError
from deepgen.models.base import UnsupportedError
from deepgen.registry import get_model_class, model_names_with
from deepgen.train import TrainConfig, Trainer, build_model


def _fit(name, data, out, steps=30, **options):
    model = build_model(name, data.info, options, seed=0)
    cfg = TrainConfig(steps=steps, batch_size=64, progress=False, eval_every=0, ckpt_every=0)
    Trainer(model, data, cfg, out, plots=False, quiet=True).fit()
    return model.eval()


def test_flows_declare_the_capability_and_models_without_a_latent_space_say_so(moons):
    assert "encode" in get_model_class("realnvp").capabilities()
    assert {"maf", "glow", "nsf"} <= set(model_names_with("encode"))
    gan = build_model("gan", moons.info, {"hidden": (8,)}, seed=0)
    with pytest.raises(UnsupportedError, match="does not offer encode; models that offer it: .*maf"):
        gan.encode(moons.test.x[:2])
    with pytest.raises(UnsupportedError, match="does not offer encode"):
        gan.interpolate(moons.test.x[:2], moons.test.x[2:4])


def test_interpolation_ends_are_reconstructions_and_traversal_sets_one_coordinate(moons, tmp_path):
    model = _fit("maf", moons, tmp_path / "maf", hidden=(16,), layers=2).double()
    x = moons.test.x[:5].double()
    path = model.interpolate(x[:2], x[2:4], steps=5)
    assert path.shape == (2, 5, 2)
    torch.testing.assert_close(path[:, 0], x[:2], atol=1e-8, rtol=0)  # a flow reconstructs exactly
    torch.testing.assert_close(path[:, -1], x[2:4], atol=1e-8, rtol=0)
    z0, z1 = model.encode(x[:2]), model.encode(x[2:4])
    torch.testing.assert_close(model.encode(path[:, 2]), (z0 + z1) / 2, atol=1e-8, rtol=0)  # the midpoint

    grid, dims = model.traverse(x, steps=4, span=2.0)
    assert grid.shape == (2, 4, 2) and sorted(dims) == [0, 1]
    z = model.encode(x[:1])[0]
    values = torch.linspace(-2, 2, 4, dtype=torch.float64)
    for i, d in enumerate(dims):
        zs = model.encode(grid[i])
        torch.testing.assert_close(zs[:, d], values, atol=1e-8, rtol=0)  # the traversed coordinate
        other = 1 - d
        torch.testing.assert_close(zs[:, other], z[other].expand(4), atol=1e-8, rtol=0)  # the rest kept
    zall = model.encode(x)
    assert dims[0] == int(zall.var(0).argmax())  # most active first
    with pytest.raises(ConfigError, match="out of range"):
        model.traverse(x, dims=[2])
    with pytest.raises(ConfigError, match="steps >= 2"):
        model.interpolate(x[:1], x[1:2], steps=1)


def test_cli_latent_modes(digits, tmp_path, capsys):
    run = tmp_path / "maf"
    _fit("maf", digits, run, hidden=(16,), layers=2)
    for mode in ("interpolate", "traverse", "reconstruct"):
        assert (
            main(
                ["latent", str(run), "--mode", mode, "-n", "3", "--steps", "4", "--out", str(tmp_path / f"{mode}.png")]
            )
            == 0
        )
        assert (tmp_path / f"{mode}.png").stat().st_size > 0
    assert (
        main(["latent", str(run), "--mode", "interpolate", "-n", "3", "--steps", "4", "--out", str(tmp_path / "i.npy")])
        == 0
    )
    arr = np.load(tmp_path / "i.npy")
    assert arr.shape == (3, 4, 1, 8, 8) and set(np.unique(arr)) <= set(range(17))  # the data's own units
    assert main(["latent", str(run), "--mode", "encode", "-n", "5", "--out", str(tmp_path / "z.npy")]) == 0
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (5, 64)
    out = tmp_path / "dec.npy"
    assert main(["latent", str(run), "--mode", "decode", "--latents", str(tmp_path / "z.npy"), "--out", str(out)]) == 0
    dec = np.load(out).reshape(5, 1, 8, 8)
    np.testing.assert_array_equal(dec, np.asarray(digits.info.to_raw(digits.test.x[:5])))  # encode-decode round trip
    capsys.readouterr()

    assert main(["latent", str(run), "--mode", "encode", "--out", str(tmp_path / "z.png")]) == 2
    assert "--out must end in .npy" in capsys.readouterr().err
    assert main(["latent", str(run), "--mode", "traverse", "--dims", "0,x", "--out", str(tmp_path / "t.png")]) == 2
    assert "--dims must be comma-separated integers" in capsys.readouterr().err
