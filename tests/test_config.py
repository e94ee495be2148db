"""Configs: frozen dataclasses that round-trip through JSON, TOML files and KEY=VALUE strings."""

from __future__ import annotations

import dataclasses
import json

import pytest

from deepgen.config import from_dict, load_file, parse_overrides, to_dict
from deepgen.data import DataSpec
from deepgen.errors import ConfigError
from deepgen.registry import get_model_class, model_names
from deepgen.train import TrainConfig

CONFIGS = sorted(
    {c for n in model_names() for c in (get_model_class(n).Config, get_model_class(n).SampleConfig)}
    | {TrainConfig, DataSpec},
    key=lambda c: c.__qualname__,
)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_json_round_trip(cls):
    """Model, sampling, trainer and data configs: frozen, and JSON round trips (models without options too)."""
    cfg = cls() if cls is not DataSpec else cls("digits")
    assert dataclasses.is_dataclass(cfg)
    assert cls.__dataclass_params__.frozen
    fields = dataclasses.fields(cfg)
    if fields:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cfg, fields[0].name, None)
    again = from_dict(cls, json.loads(json.dumps(to_dict(cfg))))
    assert again == cfg


def test_strings_are_typed_by_annotations():
    cls = get_model_class("vae").Config
    cfg = from_dict(cls, parse_overrides(["latent_dim=8", "hidden=64,32", "beta=0.5", "decoder=bernoulli"]))
    assert cfg.latent_dim == 8 and cfg.hidden == (64, 32) and cfg.beta == 0.5 and cfg.decoder == "bernoulli"
    t = from_dict(TrainConfig, parse_overrides(["grad_clip=none", "progress=false", "steps=1e3"]))
    assert t.grad_clip is None and t.progress is False and t.steps == 1000


@pytest.mark.parametrize(
    "items, match",
    [
        (["latnt_dim=3"], "unknown option.*latent_dim"),
        (["latent_dim=x"], "expected int"),
        (["latent_dim=2.5"], "expected an integer"),
        (["decoder=poisson"], "not one of"),
        (["latent_dim=0"], "must be a finite number > 0"),
        (["beta=nan"], "must be a finite number > 0"),
        (["beta=inf"], "must be a finite number > 0"),
        (["latent_dim"], "not KEY=VALUE"),
    ],
)
def test_bad_values_are_config_errors(items, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(get_model_class("vae").Config, parse_overrides(items))


def test_toml_and_json_files(tmp_path):
    (tmp_path / "c.toml").write_text("[model]\nlatent_dim = 4\n[train]\nsteps = 10\nlr = 3e-4\n")
    cfg = load_file(tmp_path / "c.toml")
    assert cfg["model"]["latent_dim"] == 4 and from_dict(TrainConfig, cfg["train"]).lr == 3e-4
    (tmp_path / "c.json").write_text('{"train": {"steps": 5}}')
    assert load_file(tmp_path / "c.json")["train"]["steps"] == 5
    (tmp_path / "bad.toml").write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_file(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="not found"):
        load_file(tmp_path / "missing.toml")


def test_train_with_config_file(tmp_path):
    import subprocess
    import sys

    (tmp_path / "run.toml").write_text("[model]\nlatent_dim = 3\nhidden = [16, 16]\n[train]\nsteps = 5\n")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "deepgen",
            "train",
            "vae",
            "--data",
            "moons",
            "--config",
            str(tmp_path / "run.toml"),
            "--out",
            str(tmp_path / "r"),
            "-q",
        ],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved["model_config"]["latent_dim"] == 3 and saved["train"]["steps"] == 5 and saved["config_version"] == 1
