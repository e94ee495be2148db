"""The model protocol's contracts end to end: sampling options, labels, capabilities, every density kind.

Uses the test doubles in ``tests/doubles.py`` (a conditional Gaussian with a sampling option and
completion, an unnormalised energy model), driven through the Python API and the CLI in-process
(the doubles are registered in this process only).
"""

from __future__ import annotations

import csv
import json

import pytest
import torch

from deepgen.cli import main
from deepgen.config import field_docs
from deepgen.errors import ConfigError, DataError
from deepgen.evaluate import evaluate
from deepgen.models.base import DensityKind
from deepgen.registry import get_model_class, model_names_with
from deepgen.train import TrainConfig, Trainer, build_model


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_line_error(code, err, *needles):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("deepgen: error:"), err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cond") / "run"
    assert main(["train", "test-class-gaussian", "--data", "digits", "--steps", "200", "--out", str(out), "-q"]) == 0
    return out


# -- sampling options ------------------------------------------------------------------------------
def test_sampling_options_are_parsed_validated_and_described():
    cls = get_model_class("test-class-gaussian")
    assert cls.sample_options(temperature="0.5").temperature == 0.5  # strings from the CLI are typed
    with pytest.raises(ConfigError, match="valid: temperature"):
        cls.sample_options(temprature=1)
    with pytest.raises(ConfigError, match="expected float"):
        cls.sample_options(temperature="hot")
    with pytest.raises(ConfigError, match="temperature must be >= 0"):
        cls.sample_options(temperature=-1)
    assert cls.describe_sampling(cls.sample_options()) == ""
    assert cls.describe_sampling(cls.sample_options(temperature=0.5)) == "temperature=0.5"
    assert field_docs(cls.SampleConfig)["temperature"].startswith("scale of the per-class")


def test_temperature_zero_gives_class_means(digits):
    model = build_model("test-class-gaussian", digits.info, seed=0)
    y = torch.tensor([0, 3, 3])
    s = model.sample(3, y=y, temperature=0)
    assert torch.equal(s[1], s[2])  # deterministic given the class
    assert torch.allclose(s[0].flatten(), model.from_continuous(model.mean[0].view(1, 1, 8, 8)).flatten())


# -- labels ----------------------------------------------------------------------------------------
def test_labels_reach_sampling_and_density(digits):
    model = build_model("test-class-gaussian", digits.info, seed=0)
    with torch.no_grad():
        model.mean[2] = 0.9  # class 2 is bright
    assert model.sample(50, y=torch.full((50,), 2)).mean() > model.sample(50, y=torch.zeros(50, dtype=int)).mean()
    drawn = model.check_labels(None, 12)
    assert drawn.tolist() == [i % 10 for i in range(12)]  # classes in turn when none are given
    x = digits.test.x[:4]
    a = model.log_likelihood(x, y=torch.tensor([0, 0, 0, 0])).values
    b = model.log_likelihood(x, y=torch.tensor([2, 2, 2, 2])).values
    assert not torch.allclose(a, b)
    with pytest.raises(DataError, match="pass the labels"):
        model.log_likelihood(x)
    with pytest.raises(DataError, match=r"0\.\.9"):
        model.sample(2, y=torch.tensor([0, 10]))


def test_conditional_model_needs_labelled_data(moons):
    with pytest.raises(DataError, match="needs labelled data"):
        build_model("test-class-gaussian", moons.info)


def test_conditional_model_trained_evaluated_and_scored_end_to_end(cond_run, capsys, tmp_path):
    code, out, err = cli(capsys, "sample", cond_run, "-n", "20", "--label", "3", "--out", tmp_path / "s.npy")
    assert code == 0, err
    code, out, err = cli(
        capsys, "sample", cond_run, "-n", "20", "--labels", "0,1", "-s", "temperature=0", "--out", tmp_path / "t.npy"
    )
    assert code == 0 and "temperature=0" in out, err
    import numpy as np

    t = np.load(tmp_path / "t.npy")
    assert (t[0] == t[2]).all() and not (t[0] == t[1]).all()  # class 0, 1, 0, 1 ... at temperature 0
    code, out, err = cli(capsys, "score", cond_run, "--out", tmp_path / "scores.csv")
    assert code == 0, err
    rows = list(csv.DictReader(open(tmp_path / "scores.csv")))
    assert len(rows) == 360 and rows[0]["kind"] == "lower bound"
    code, out, err = cli(
        capsys, "eval", cond_run, "--n-samples", "200", "-s", "temperature=0.8", "--out", tmp_path / "e.json"
    )
    assert code == 0, err
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["sampling"] == "temperature=0.8" and res["sample_options"] == {"temperature": 0.8}
    assert res["metrics"]["bpd"]["value"] > 0 and res["has_exact_density"] is True
    code, out, err = cli(capsys, "sample", cond_run, "-n", "4", "-s", "temprature=1", "--out", tmp_path / "u.npy")
    one_line_error(code, err, "temprature", "valid: temperature")


def test_unconditional_model_given_labels_says_so(tmp_path, capsys):
    run = tmp_path / "vae"
    assert main(["train", "vae", "--data", "moons", "--steps", "5", "--out", str(run), "-q", "-o", "hidden=8"]) == 0
    code, out, err = cli(capsys, "sample", run, "-n", "4", "--label", "1", "--out", tmp_path / "s.npy")
    one_line_error(code, err, "unconditional")


# -- capabilities ------------------------------------------------------------------------------------
def test_capabilities_are_declared_and_queried(digits):
    cls = get_model_class("test-class-gaussian")
    assert cls.capabilities() == ["complete"] and cls.supports("complete") and not cls.supports("edit")
    assert "test-class-gaussian" in model_names_with("complete")
    model = build_model("test-class-gaussian", digits.info, seed=0)
    x, y = digits.test.x[:3], digits.test.y[:3]
    mask = torch.zeros_like(x, dtype=torch.bool)
    mask[..., :4, :] = True
    c = model.complete(x, mask, y=y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(c[mask], x[mask]) and not torch.equal(c, x)
    with pytest.raises(Exception, match="does not offer edit"):
        model.edit(x, 0.5)
    vae = build_model("vae", digits.info, {"latent_dim": 2, "channels": (4, 8)})
    with pytest.raises(Exception, match="test-class-gaussian"):  # names the models that offer it
        vae.complete(x, mask)


def test_complete_through_the_cli(cond_run, capsys, tmp_path):
    code, out, err = cli(capsys, "complete", cond_run, "--mask", "bottom-half", "-n", "6", "--out", tmp_path / "c.png")
    assert code == 0, err
    from PIL import Image

    w, h = Image.open(tmp_path / "c.png").size
    assert w > h  # 6 columns; rows: original, observed part, 3 completions
    code, out, err = cli(capsys, "complete", cond_run, "--mask", "random:0.5", "-n", "2", "--out", tmp_path / "c.npy")
    assert code == 0, err
    code, out, err = cli(capsys, "edit", cond_run, "--out", tmp_path / "e.png")
    one_line_error(code, err, "does not offer edit")


# -- unnormalised densities ---------------------------------------------------------------------------
def test_unnormalised_model_is_scored_and_evaluated_as_such(moons, tmp_path, capsys):
    model = build_model("test-energy", moons.info, seed=0)
    Trainer(
        model,
        moons,
        TrainConfig(steps=150, batch_size=64, progress=False, eval_every=50),
        tmp_path / "e",
        plots=False,
        quiet=True,
    ).fit()
    assert model.density_kind == DensityKind.UNNORMALISED
    metrics = [json.loads(line) for line in open(tmp_path / "e" / "metrics.jsonl")]
    assert any("neg_energy" in m for m in metrics if m["split"] == "val")  # periodic evaluation did not crash
    res = evaluate(model, moons, n_samples=300, sample_options={"steps": 30})
    m = res["metrics"]
    assert m["nll"]["value"] is None and "log Z" in m["nll"]["reason"] and m["bpd"]["value"] is None
    assert m["neg_energy"]["value"] < 0 and "unnormalised" in m["neg_energy"]["label"]
    assert res["sampling"] == "steps=30"
    code, out, err = cli(capsys, "score", tmp_path / "e", "--out", tmp_path / "s.csv")
    assert code == 0 and "not an NLL" in out, err
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert set(rows[0]) == {"index", "neg_energy", "kind", "method"} and rows[0]["kind"] == "unnormalised"
    code, out, err = cli(
        capsys, "eval", tmp_path / "e", "--n-samples", "100", "-s", "steps=10", "--out", tmp_path / "ev.json"
    )
    assert code == 0 and "mean -E(x)" in out, err


def test_unknown_likelihood_method_is_one_line(tmp_path, capsys):
    run = tmp_path / "g"
    assert main(["train", "gmm", "--data", "moons", "--steps", "5", "--out", str(run), "-q"]) == 0
    code, out, err = cli(capsys, "score", run, "--out", tmp_path / "s.csv", "--method", "ode")
    one_line_error(code, err, "no likelihood method 'ode'")


# -- data kinds --------------------------------------------------------------------------------------
def test_a_signal_model_trains_plots_samples_and_is_scored_by_fidelity(waves_signal, tmp_path, capsys):
    from PIL import Image

    from deepgen.plots import sample_view

    assert sample_view(waves_signal.info) == "images"
    model = build_model("test-signal-mlp", waves_signal.info, {"hidden": 64}, seed=0)
    before = evaluate(model, waves_signal)["metrics"]["psnr"]["value"]
    run = tmp_path / "sig"
    from deepgen.data import DataSpec

    cfg = TrainConfig(steps=300, batch_size=128, lr=3e-3, progress=False)
    spec = DataSpec("signal:waves", image_size=16)  # as the fixture loaded it, so eval reloads the same data
    Trainer(model, waves_signal, cfg, run, data_spec=spec, quiet=True).fit()
    res = evaluate(model, waves_signal)
    assert res["data_kind"] == "signal" and "bpd" not in res["metrics"]
    assert res["metrics"]["psnr"]["value"] > before + 3  # fitting the signal raises held-out PSNR
    assert Image.open(run / "samples.png").size[0] >= 16  # an image grid, not a scatter of coordinates
    code, out, err = cli(capsys, "sample", run, "-n", "2", "-s", "scale=2", "--out", tmp_path / "s.png")
    assert code == 0, err
    code, out, err = cli(capsys, "eval", run, "--out", tmp_path / "e.json")
    assert code == 0 and "PSNR" in out, err
