"""End-to-end command line: train, sample, score, eval, compare, list; one-line errors for bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest


def deepgen(*args, timeout=300):
    p = subprocess.run(
        [sys.executable, "-m", "deepgen", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    return p


def assert_one_line_error(p, *needles):
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("deepgen: error:"), p.stderr
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "vae"
    p = deepgen(
        "train",
        "vae",
        "--data",
        "digits",
        "--steps",
        "60",
        "--out",
        out,
        "-q",
        "-o",
        "latent_dim=4",
        "-o",
        "channels=8,16",
    )
    assert p.returncode == 0, p.stderr
    assert "validation NLL" in p.stdout and "bits/dim (upper bound)" in p.stdout
    for f in ("checkpoint.pt", "config.json", "metrics.jsonl", "loss.png", "samples.png"):
        assert (out / f).exists(), f
    return out


def test_train_sample_score_eval_on_digits(vae_run, tmp_path):
    p = deepgen("sample", vae_run, "-n", "16", "--out", tmp_path / "s.png")
    assert p.returncode == 0, p.stderr
    from PIL import Image

    assert Image.open(tmp_path / "s.png").size[0] >= 4 * 8
    p = deepgen("sample", vae_run, "-n", "10", "--out", tmp_path / "s.npy")
    assert p.returncode == 0, p.stderr
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (10, 1, 8, 8) and arr.dtype == np.uint8 and arr.max() <= 16  # digits' own units

    p = deepgen("score", vae_run, "--data", "digits", "--out", tmp_path / "scores.csv", "--k", "20")
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(open(tmp_path / "scores.csv")))
    assert len(rows) == 360 and rows[0]["kind"] == "estimate" and "K=20" in rows[0]["method"]
    nll, bpd = float(rows[0]["nll_nats"]), float(rows[0]["bpd"])
    assert bpd == pytest.approx(nll / (64 * np.log(2)), rel=1e-5) and nll > 0

    p = deepgen("score", vae_run, "--out", tmp_path / "elbo.csv", "--k", "1")
    assert p.returncode == 0, p.stderr
    rows_elbo = list(csv.DictReader(open(tmp_path / "elbo.csv")))
    assert rows_elbo[0]["kind"] == "lower bound"
    mean = lambda rs: np.mean([float(r["nll_nats"]) for r in rs])  # noqa: E731
    assert mean(rows) < mean(rows_elbo)  # the IS estimate is tighter than the ELBO

    p = deepgen("eval", vae_run, "--k", "10", "--examples", "120", "--n-samples", "500", "--out", tmp_path / "e.json")
    assert p.returncode == 0, p.stderr
    res = json.load(open(tmp_path / "e.json"))
    m = res["metrics"]
    assert m["nll"]["kind"] == "estimate" and m["bpd"]["value"] > 0
    assert m["nll"]["n"] == 120 and "120 of 360 test examples" in p.stdout
    assert m["fid"]["value"] > 0 and "deepgen-digits" in m["fid"]["label"]
    for key in ("kid", "precision", "recall", "is", "sampling_speed", "parameters"):
        assert m[key]["value"] is not None, key
    assert "FID (deepgen-digits features)" in p.stdout


def test_gan_has_no_density(tmp_path):
    out = tmp_path / "gan"
    assert deepgen("train", "gan", "--data", "moons", "--steps", "20", "--out", out, "-q").returncode == 0
    p = deepgen("score", out, "--out", tmp_path / "x.csv")
    assert_one_line_error(p, "no log-likelihood", "not log p(x)")
    p = deepgen("eval", out, "--n-samples", "300", "--out", tmp_path / "e.json")
    assert p.returncode == 0, p.stderr
    assert "n/a" in p.stdout and "not log p(x)" in p.stdout
    res = json.load(open(tmp_path / "e.json"))
    assert res["metrics"]["nll"]["value"] is None and res["metrics"]["mmd2"]["value"] is not None


def test_siren_fits_an_image_file_from_its_gradient_and_renders_it_larger(tmp_path):
    from PIL import Image

    u = np.linspace(0, 1, 12)
    Image.fromarray((np.outer(u, 1 - u)[..., None] * [255, 128, 64]).astype(np.uint8)).save(tmp_path / "im.png")
    out = tmp_path / "siren"
    p = deepgen("train", "siren", "--data", tmp_path / "im.png", "--steps", "5", "--out", out,
                "-o", "fit=gradient", "-o", "hidden=8", "-o", "layers=2")  # fmt: skip
    assert p.returncode == 0, p.stderr
    p = deepgen("sample", out, "-n", "1", "-s", "resolution=30,30", "--out", tmp_path / "big.npy")
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "big.npy").shape == (1, 3, 30, 30)
    p = deepgen("eval", out, "--out", tmp_path / "e.json")
    assert p.returncode == 0, p.stderr
    assert "psnr" in json.loads((tmp_path / "e.json").read_text())["metrics"]


def test_cyclegan_translates_both_ways_and_evaluates_translations(tmp_path):
    out = tmp_path / "cyc"
    p = deepgen("train", "cyclegan", "--data", "domains:digits-inverted", "--steps", "10", "--out", out,
                "-o", "channels=4", "-o", "res_blocks=1", "-o", "downsample=1")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert f"deepgen translate {out}" in p.stdout and (out / "samples.png").exists()  # a translation grid
    for direction in ("a2b", "b2a"):
        p = deepgen("translate", out, "-n", "4", "-s", f"direction={direction}", "--out", tmp_path / f"{direction}.npy")
        assert p.returncode == 0, p.stderr
        assert np.load(tmp_path / f"{direction}.npy").shape == (4, 3, 1, 8, 8)  # (n, --samples, *shape)
    assert_one_line_error(deepgen("sample", out, "--out", tmp_path / "s.png"), "does not sample from noise")
    p = deepgen("eval", out, "--n-samples", "100", "--out", tmp_path / "e.json")
    assert p.returncode == 0, p.stderr
    m = json.load(open(tmp_path / "e.json"))["metrics"]
    for key in ("fid_a2b", "fid_b2a", "label_agreement_a2b", "label_agreement_b2a"):
        assert m[key]["value"] is not None, key
    assert 0 <= m["label_agreement_a2b"]["value"] <= 1
    # the digits classifier knows domain A (plain digits), not B (inverted): the ceilings say so
    assert m["label_agreement_b2a"]["classifier_accuracy_on_real_target"] > 0.8
    assert m["label_agreement_a2b"]["classifier_accuracy_on_real_target"] < 0.5


def test_list():
    p = deepgen("list")
    assert p.returncode == 0
    for word in ("vae", "gan", "independent", "lower bound", "exact", "moons", "binarized-mnist", "digits"):
        assert word in p.stdout


@pytest.mark.parametrize("cmd", ["train", "sample", "score", "eval", "compare", "list", "train-features"])
def test_help_has_examples(cmd):
    p = deepgen(cmd, "--help")
    assert p.returncode == 0 and "usage:" in p.stdout
    if cmd != "list":
        assert "Examples:" in p.stdout


def test_unknown_names(tmp_path):
    assert_one_line_error(deepgen("train", "vea", "--data", "digits"), "unknown model 'vea'", "Did you mean 'vae'")
    assert_one_line_error(deepgen("train", "vae", "--data", "mnits"), "unknown dataset", "mnist")
    assert_one_line_error(deepgen("train", "vae", "--data", "digits", "-o", "latnt=3"), "unknown option", "latent_dim")
    assert_one_line_error(
        deepgen("compare", "--data", "digits", "--models", "vae,flw", "--out", tmp_path), "unknown model"
    )


@pytest.mark.parametrize(
    "make, args, needles",
    [
        (lambda p: p.write_text("1,2\n3,nan\n"), [], ["bad.csv", "NaN at row 1, column 1"]),
        (lambda p: p.write_text("1,2\ninf,4\n"), [], ["bad.csv", "inf at row 1, column 0"]),
        (lambda p: p.write_text(""), [], ["bad.csv", "empty"]),
        (
            lambda p: p.write_text("0,1\n1,3\n"),
            ["--levels", "2"],
            ["bad.csv", "value 3.0 at row 1, column 1"],
        ),
        (lambda p: p.write_text("0.5,1\n1,0\n"), ["-o", "likelihood=bernoulli"], ["needs binary data"]),
    ],
)
def test_bad_data_gives_one_line(tmp_path, make, args, needles):
    f = tmp_path / "bad.csv"
    make(f)
    model = "independent"
    assert_one_line_error(
        deepgen("train", model, "--data", f, "--steps", "2", "--out", tmp_path / "r", *args), *needles
    )


def test_wrong_dimensions(tmp_path):
    np.save(tmp_path / "v.npy", np.arange(12.0))
    assert_one_line_error(deepgen("train", "gmm", "--data", tmp_path / "v.npy", "--out", tmp_path / "r"), "shape (12,)")
    np.save(tmp_path / "ok.npy", np.random.default_rng(0).normal(size=(50, 3)))
    assert (
        deepgen("train", "gmm", "--data", tmp_path / "ok.npy", "--steps", "3", "--out", tmp_path / "g", "-q").returncode
        == 0
    )
    np.save(tmp_path / "other.npy", np.zeros((5, 4)))
    p = deepgen("score", tmp_path / "g", "--data", tmp_path / "other.npy", "--out", tmp_path / "x.csv")
    assert_one_line_error(p, "shape (4,)", "trained on (3,)")


def test_corrupt_checkpoint(vae_run, tmp_path):
    bad = tmp_path / "run"
    bad.mkdir()
    data = (vae_run / "checkpoint.pt").read_bytes()
    (bad / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    assert_one_line_error(deepgen("sample", bad, "--out", tmp_path / "x.png"), "truncated or corrupt")
    assert_one_line_error(deepgen("eval", tmp_path / "nothing"), "no checkpoint")


def test_compare_on_toy(tmp_path):
    p = deepgen(
        "compare",
        "--data",
        "8gaussians",
        "--models",
        "gmm,gan",
        "--steps",
        "40",
        "--out",
        tmp_path,
        "-q",
        "-o",
        "gmm.components=8",
        "--n-samples",
        "500",
    )
    assert p.returncode == 0, p.stderr
    assert "| Family |" in p.stdout and "report:" in p.stdout
    for f in ("table.md", "table.csv", "report.html", "results.json", "density/gmm.png", "density/gan.png"):
        assert (tmp_path / f).exists(), f
    table = (tmp_path / "table.md").read_text()
    assert "Modes" in table and "(exact)" in table and "(entropy)" in table


def test_one_column_table(tmp_path):
    np.savetxt(tmp_path / "one.csv", np.random.default_rng(0).normal(size=(200, 1)), delimiter=",")
    p = deepgen("train", "independent", "--data", tmp_path / "one.csv", "--steps", "5", "--out", tmp_path / "r", "-q")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "r" / "samples.png").exists()


def test_threads_is_accepted_by_every_command_that_computes(vae_run, tmp_path, capsys):
    import argparse

    import torch

    from deepgen.cli import OWN_THREADS, build_parser, main

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        has = any("--threads" in a.option_strings for a in p._actions)
        assert has == (name not in {"list", "download"}), name
    before = torch.get_num_threads()
    try:
        assert main(["sample", str(vae_run), "-n", "4", "--threads", "1", "--out", str(tmp_path / "s.png")]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert main(["sample", str(vae_run), "-n", "4", "--threads", "0", "--out", str(tmp_path / "s.png")]) == 2
    assert "--threads must be at least 1, got 0" in capsys.readouterr().err
    assert "train" in OWN_THREADS and "compare" in OWN_THREADS
