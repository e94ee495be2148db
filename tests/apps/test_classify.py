"""Generative classifiers: Bayes' rule against a closed form, the prior, the metrics on known cases,
common random numbers across classes, what cannot classify, and the CLI end to end."""

from __future__ import annotations

import json
import math

import pytest
import torch

from deepgen.apps.classify import class_posteriors, class_prior, classification_metrics
from deepgen.cli import main
from deepgen.data import DataInfo
from deepgen.errors import ConfigError
from deepgen.train.run import build_model

POINTS = DataInfo("pts", (2,), num_classes=3)


def _gaussians(info=POINTS, same=False):
    model = build_model("test-class-gaussian", info, seed=0)  # tests/doubles.py: p(x | y) diagonal Gaussian
    with torch.no_grad():
        if same:
            model.mean.fill_(0.5)
            model.log_std.fill_(-1.0)
        else:
            model.mean.copy_(torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 3.0]]))
            model.log_std.copy_(torch.tensor([[0.0, 0.0], [0.0, -0.5], [0.5, 0.0]]))
    return model


def test_bayes_rule_matches_the_closed_form():
    model, log_prior = _gaussians(), torch.log(torch.tensor([0.5, 0.3, 0.2]))
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0)) * 2
    got = class_posteriors(model, x, log_prior)
    mean, std = model.mean.detach().double(), model.log_std.detach().double().exp()
    z = (x.double()[:, None, :] - mean) / std
    log_lik = (-0.5 * z**2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    want = torch.log_softmax(log_lik + log_prior.double(), 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)  # the model computes in float32


def test_the_prior_is_the_smoothed_class_frequency():
    lp = class_prior(torch.tensor([0, 0, 0, 1]), 3)
    torch.testing.assert_close(lp.exp(), torch.tensor([4 / 7, 2 / 7, 1 / 7], dtype=torch.float64))


def test_metrics_on_known_cases():
    y = torch.tensor([0, 1, 2, 2])
    sure = torch.log(torch.eye(3, dtype=torch.float64)[[0, 1, 2, 1]].clamp_min(1e-12))  # the last one is wrong
    m = classification_metrics(sure, y)
    assert m["accuracy"] == 0.75 and m["confusion"][2] == [0, 1, 1] and m["n"] == 4
    assert m["expected_calibration_error"] == pytest.approx(0.25)  # confidence 1, accuracy 0.75
    uniform = torch.full((4, 3), -math.log(3), dtype=torch.float64)
    assert classification_metrics(uniform, y)["mean_log_prob_true_class"] == pytest.approx(-math.log(3))


def test_every_class_is_scored_with_the_same_noise(binary_digits):
    """On discrete data the likelihood is a one-sample dequantisation bound: with the same noise for
    every class, a model whose classes are identical returns exactly the prior."""
    model = _gaussians(binary_digits.info, same=True)
    prior = class_prior(binary_digits.train.y, 10)
    post = class_posteriors(model, binary_digits.test.x[:20], prior)
    torch.testing.assert_close(post, prior.expand(20, -1).double())
    with torch.no_grad():
        model.mean.add_(0.1 * torch.randn(model.mean.shape, generator=torch.Generator().manual_seed(1)))
    runs = []
    for global_seed in (123, 456):  # the seed argument, not the global RNG, fixes the noise
        torch.manual_seed(global_seed)
        runs.append(class_posteriors(model, binary_digits.test.x[:20], prior, seed=7))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


def test_what_cannot_classify_says_why(moons):
    with pytest.raises(ConfigError, match="class_conditional=true"):
        class_posteriors(build_model("maf", POINTS, seed=0), torch.zeros(2, 2), torch.zeros(3))
    with pytest.raises(ConfigError, match="not class-conditional"):
        class_posteriors(build_model("gmm", moons.info, seed=0), torch.zeros(2, 2), torch.zeros(3))


def test_cli_classifies_the_test_split(tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "maf", "--data", "digits", "-o", "class_conditional=true", "-o", "hidden=32", "-o", "layers=2"]
    assert main([*argv, "--steps", "20", "-q", "--out", str(run)]) == 0
    assert main(["classify", str(run), "-n", "50", "--out", str(tmp_path / "c")]) == 0
    res = json.loads((tmp_path / "c" / "classify.json").read_text())
    assert res["n"] == 50 and 0 <= res["accuracy"] <= 1 and len(res["confusion"]) == 10
    assert "accuracy" in capsys.readouterr().out and (tmp_path / "c" / "confusion.png").exists()
    unconditional = tmp_path / "u"
    assert main(["train", "maf", "--data", "digits", "--steps", "2", "-q", "--out", str(unconditional)]) == 0
    assert main(["classify", str(unconditional), "--out", str(tmp_path / "c2")]) == 2
