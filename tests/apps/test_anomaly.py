"""Anomaly detection: the separation metrics against brute force and known cases, every score on the
models that offer it (asked from capabilities), typicality catching what the likelihood misses, the
class filter it relies on, and the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepgen.apps.anomaly import (
    anomaly_scores,
    available_scores,
    detection_metrics,
    flag_rates,
    threshold_for,
)
from deepgen.cli import main
from deepgen.cli.common import parse_classes
from deepgen.data import DataInfo, DataSpec, format_classes, load_dataset
from deepgen.errors import ConfigError, DataError, UnknownNameError
from deepgen.train import TrainConfig, Trainer
from deepgen.train.run import build_model


def _brute_auroc(a, b):
    """P(anomaly > normal) + P(tie) / 2 over every pair."""
    d = b[:, None] - a[None, :]
    return float(((d > 0).double() + 0.5 * (d == 0).double()).mean())


def test_auroc_is_the_pairwise_probability_with_ties_counted_half():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, 6, (40,), generator=g).double()  # many ties
    b = torch.randint(2, 9, (25,), generator=g).double()
    m = detection_metrics(a, b)
    assert m["auroc"] == pytest.approx(_brute_auroc(a, b), abs=1e-12)
    assert (m["n_normal"], m["n_anomalous"]) == (40, 25)


def test_known_cases_rank_correctly():
    a, b = torch.arange(10.0), torch.arange(10.0) + 100
    perfect, reversed_, same = detection_metrics(a, b), detection_metrics(b, a), detection_metrics(a, a.clone())
    assert perfect["auroc"] == 1 and perfect["average_precision"] == pytest.approx(1) and perfect["fpr_at_95_tpr"] == 0
    assert reversed_["auroc"] == 0 and reversed_["fpr_at_95_tpr"] == 1
    assert same["auroc"] == pytest.approx(0.5)
    # 95% of 20 anomalies above the 10th-highest normal score: half the normal data is flagged
    normal, anomalous = torch.arange(20.0), torch.cat([torch.full((19,), 50.0), torch.tensor([9.5])])
    assert detection_metrics(normal, anomalous)["fpr_at_95_tpr"] == pytest.approx(0.0)
    anomalous = torch.cat([torch.full((18,), 50.0), torch.tensor([9.5, 9.6])])
    assert detection_metrics(normal, anomalous)["fpr_at_95_tpr"] == pytest.approx(10 / 20)


def test_threshold_flags_the_asked_share_of_normal_data():
    normal = torch.randn(10_000, generator=torch.Generator().manual_seed(1)).double()
    thr = threshold_for(normal, 0.05)
    rates = flag_rates(normal, normal + 10, thr)
    assert rates["fpr"] == pytest.approx(0.05, abs=0.002) and rates["tpr"] == 1
    assert rates["precision"] == pytest.approx(10_000 / (10_000 + 500), abs=2e-3)
    with pytest.raises(ConfigError):
        threshold_for(normal, 1.5)
    with pytest.raises(ConfigError, match="NaN"):
        detection_metrics(normal, torch.tensor([float("nan")]))


def test_scores_are_asked_from_capabilities(moons):
    assert available_scores(build_model("gmm", moons.info, seed=0)) == ["nll", "typicality"]
    assert available_scores(build_model("vae", moons.info, seed=0)) == ["nll", "typicality", "reconstruction"]
    assert available_scores(build_model("realnvp", moons.info, seed=0)) == ["nll", "typicality"]  # exact inverse
    assert "edit" in available_scores(build_model("ddpm", moons.info, seed=0))
    assert available_scores(build_model("gan", moons.info, seed=0)) == []
    with pytest.raises(ConfigError, match="offers"):
        anomaly_scores(build_model("gmm", moons.info, seed=0), moons.test.x[:4], "edit")


def test_typicality_flags_the_too_likely_inputs_the_likelihood_prefers():
    """N(0, I) in 64 dimensions: points near the mode are far more likely than any sample, yet no
    sample lies there (Nalisnick et al. 2019). The NLL ranks them as the *most* normal data."""
    info = DataInfo("gauss64", (64,))
    model = build_model("independent", info, seed=0)  # initialised at N(0, I): the true density
    g = torch.Generator().manual_seed(0)
    normal, reference = torch.randn(500, 64, generator=g), torch.randn(2000, 64, generator=g)
    near_mode = 0.1 * torch.randn(200, 64, generator=g)
    nll = detection_metrics(*(anomaly_scores(model, x, "nll").values for x in (normal, near_mode)))
    typ = [anomaly_scores(model, x, "typicality", reference=reference).values for x in (normal, near_mode)]
    assert nll["auroc"] < 0.01 and detection_metrics(*typ)["auroc"] > 0.99
    with pytest.raises(ConfigError, match="reference"):
        anomaly_scores(model, normal, "typicality")


def test_a_trained_density_separates_shifted_points(moons, tmp_path):
    model = build_model("gmm", moons.info, seed=0)
    cfg = TrainConfig(steps=300, batch_size=256, lr=0.05, progress=False, eval_every=0, ckpt_every=0)
    Trainer(model, moons, cfg, tmp_path, plots=False, quiet=True).fit()
    far = moons.test.x[:500] * 0.3 + torch.tensor([0.0, 6.0])
    m = detection_metrics(anomaly_scores(model, moons.test.x[:500], "nll").values, anomaly_scores(model, far).values)
    assert m["auroc"] > 0.99


@pytest.mark.parametrize("name, score", [("vae", "reconstruction"), ("ddpm", "edit")])
def test_reconstruction_and_edit_scores_are_finite_and_reproducible(moons, name, score):
    from deepgen.registry import get_model_class

    model = build_model(name, moons.info, get_model_class(name).test_options, seed=0)
    x = moons.test.x[:16]
    kw = {"strength": 0.2, "repeats": 2} if score == "edit" else {}
    a = anomaly_scores(model, x, score, generator=torch.Generator().manual_seed(3), batch_size=5, **kw)
    b = anomaly_scores(model, x, score, generator=torch.Generator().manual_seed(3), batch_size=5, **kw)
    assert a.values.shape == (16,) and torch.isfinite(a.values).all() and (a.values >= 0).all()
    torch.testing.assert_close(a.values, b.values)
    with pytest.raises(UnknownNameError):
        anomaly_scores(model, x, "bogus")
    if score == "edit":
        with pytest.raises(ConfigError, match="strength"):
            anomaly_scores(model, x, score, strength=0.0)


def test_class_filter(binary_digits):
    ds = load_dataset(DataSpec("digits", classes=(0, 1, 2)))
    for split in (ds.train, ds.val, ds.test):
        assert set(split.y.tolist()) == {0, 1, 2}
    assert ds.info.name == "digits[classes 0-2]" and ds.info.num_classes == 10
    assert parse_classes("0-3,9") == (0, 1, 2, 3, 9) and format_classes((0, 1, 2, 3, 9)) == "0-3,9"
    with pytest.raises(DataError, match="labels"):
        load_dataset(DataSpec("moons", classes=(1,)))
    with pytest.raises(DataError, match="no training examples"):
        load_dataset(DataSpec("digits", classes=(42,)))


def test_cli_scores_a_held_out_class(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "vae", "--data", "digits", "--classes", "0-8", "--steps", "30", "-q", "--out", str(run),
                 "-o", "hidden=32", "-o", "latent_dim=4"]) == 0  # fmt: skip
    out = tmp_path / "an"
    assert main(["anomaly", str(run), "--anomaly-classes", "9", "--out", str(out), "-n", "100", "--k", "4"]) == 0
    res = json.loads((out / "anomaly.json").read_text())
    assert set(res["scores"]) == {"nll", "typicality", "reconstruction"}
    for m in res["scores"].values():
        assert 0 <= m["auroc"] <= 1 and m["n_anomalous"] == 36 and m["n_normal"] == 100
    assert (out / "hist_nll.png").exists() and (out / "scores.csv").read_text().count("anomalous") == 36
    capsys.readouterr()
    assert main(["anomaly", str(run), "--list", "--out", str(out)]) == 0
    assert "reconstruction" in capsys.readouterr().out
    assert main(["anomaly", str(run), "--out", str(out)]) == 2  # no anomalies given
    assert main(["anomaly", str(run), "--anomaly-classes", "3", "--out", str(out)]) == 2  # a normal class
    assert np.isfinite([m["auroc"] for m in res["scores"].values()]).all()
