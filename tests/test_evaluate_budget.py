"""deepgen.evaluate shows its progress phase by phase and keeps to the model's declared budget."""

from __future__ import annotations

from deepgen.evaluate import evaluate
from deepgen.models.vae.vae import VAE
from deepgen.train import build_model


def test_evaluate_prints_each_phase_and_respects_the_budget(digits, capsys, monkeypatch):
    monkeypatch.setattr(VAE, "eval_examples", 100)  # Monte Carlo likelihoods on 100 of the 360 test images
    monkeypatch.setattr(VAE, "eval_k", 4)
    model = build_model("vae", digits.info, {"latent_dim": 2, "channels": (4, 8)}, seed=0)
    res = evaluate(model, digits, progress=True, n_samples=200)
    err = capsys.readouterr().err
    for phase in ("likelihood:", "reference statistics:", "sampling:", "features:", "distances:"):
        assert phase in err, (phase, err)
    nll = res["metrics"]["nll"]
    assert nll["n"] == 100 and nll["n_total"] == 360 and nll["k"] == 4
    assert "100 of 360 test examples" in nll["method"] and "K=4" in nll["method"]
    assert res["n_samples"] == 200 and set(res["timings"]) >= {"likelihood", "sampling", "features", "distances"}
    full = evaluate(model, digits, k=2, full=True, n_samples=50)["metrics"]["nll"]  # --full: every example
    assert full["n"] == 360 and full["k"] == 2


def test_quiet_evaluation_prints_nothing(moons, capsys):
    model = build_model("gmm", moons.info, {"components": 2}, seed=0)
    evaluate(model, moons, n_samples=100)
    assert capsys.readouterr().err == ""


def test_examples_sets_how_many_test_examples_are_scored(digits, capsys, monkeypatch):
    monkeypatch.setattr(VAE, "eval_examples", 100)
    monkeypatch.setattr(VAE, "eval_k", 4)
    model = build_model("vae", digits.info, {"latent_dim": 2, "channels": (4, 8)}, seed=0)
    small = evaluate(model, digits, examples=30, n_samples=50, progress=True)["metrics"]["nll"]
    assert small["n"] == 30 and "30 of 360 test examples" in small["method"]
    assert "0/30 " in capsys.readouterr().err  # the progress bar counts the examples actually scored
    full_k = evaluate(model, digits, examples=40, full=True, n_samples=50)["metrics"]["nll"]
    assert full_k["n"] == 40  # --examples sets the count, --full the papers' K
    every = evaluate(model, digits, examples=10_000, n_samples=50)["metrics"]["nll"]
    assert every["n"] == 360 and "of 360" not in every["method"]


def test_a_smaller_subset_lies_inside_a_larger_one(digits):
    from deepgen.evaluate.likelihood import subset

    rows = {tuple(r.flatten().tolist()) for r in subset(digits.test, 200).x}
    assert all(tuple(r.flatten().tolist()) in rows for r in subset(digits.test, 50).x)


def test_examples_below_one_is_refused(digits):
    import pytest

    from deepgen.errors import ConfigError

    model = build_model("gmm", digits.info, {"components": 2}, seed=0)
    with pytest.raises(ConfigError, match="at least 1"):
        evaluate(model, digits, examples=0, n_samples=50)
