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
