"""The comparison report: tables in three formats, and report.html rendered by headless Chromium."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess

import pytest

from conftest import small_options
from deepgen.compare import run_compare
from deepgen.data import DataSpec
from deepgen.errors import ConfigError

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    models = ["independent", "vae", "gan"]
    res = run_compare(
        DataSpec("digits"),
        models,
        out,
        steps=30,
        batch_size=32,
        options={m: small_options(m) for m in models},
        k=5,
        n_samples=300,
        progress=False,
        log=lambda *a: None,
    )
    return res


def test_tables_have_one_row_per_model_plus_reference(report):
    rows = list(csv.reader(open(report.files["csv"])))
    header, body = rows[0], rows[1:]
    assert header[:2] == ["Family", "Model"] and "FID ± s.e." in header and "NLL (bits/dim)" in header
    assert "Precision" not in header  # k-NN precision fails the crafted-case ranking on MNIST
    assert [r[1] for r in body] == ["real data (held out)", "independent", "vae", "gan"]  # grouped by family
    by_model = {r[1]: dict(zip(header, r)) for r in body}
    assert by_model["independent"]["Exact density"] == "yes" and "(exact)" in by_model["independent"]["NLL (bits/dim)"]
    assert "(est.)" in by_model["vae"]["NLL (bits/dim)"]
    assert by_model["gan"]["NLL (bits/dim)"] == "n/a" and by_model["gan"]["Exact density"] == "no"
    fid = {m: float(r["FID ± s.e."].split(" ± ")[0]) for m, r in by_model.items()}
    assert fid["real data (held out)"] < fid["independent"]
    md = open(report.files["markdown"]).read()
    assert md.count("\n| ") >= 5 and "deepgen-digits features" in md
    res = json.load(open(report.files["json"]))
    assert res["meta"]["steps"] == 30 and len(res["rows"]) == 3
    # every row, the real-data floor included, scores the same number of samples, and the table says so
    assert res["reference"]["n_samples"] == res["meta"]["n_samples"] == 300
    assert all(r["n_samples"] == 300 for r in res["rows"]) and "n = 300" in md


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(report, tmp_path):
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium package")
        pytest.skip("chromium not installed (CI installs it)")
    url = "file://" + os.path.abspath(report.files["html"])
    shot = tmp_path / "report.png"
    common = [exe, *CHROMIUM_FLAGS, "--window-size=1280,1600"]
    subprocess.run(
        [*common, f"--user-data-dir={tmp_path / 'u1'}", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
    from PIL import Image

    img = Image.open(shot).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100  # not a blank page
    dom = subprocess.run(
        [*common, f"--user-data-dir={tmp_path / 'u2'}", "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'id="image-status"' in dom
    status = dom.split('id="image-status"', 1)[1].split(">", 1)[0]
    loaded = int(status.split('data-loaded="')[1].split('"')[0])
    total = int(status.split('data-total="')[1].split('"')[0])
    assert total >= 6 and loaded == total  # a sample grid and a loss curve per model, all decoded


def test_a_slow_sampler_budget_sets_every_rows_n(tmp_path, monkeypatch):
    from deepgen.models.autoregressive.pixelcnn import PixelCNN

    monkeypatch.setattr(PixelCNN, "eval_samples", 40)
    lines = []
    res = run_compare(
        DataSpec("digits"),
        ["independent", "pixelcnn"],
        tmp_path,
        steps=3,
        batch_size=16,
        options={"pixelcnn": small_options("pixelcnn")},
        progress=False,
        log=lines.append,
    )
    out = json.load(open(res.files["json"]))
    assert out["reference"]["n_samples"] == out["meta"]["n_samples"] == 40
    assert all(r["n_samples"] == 40 for r in out["rows"])
    assert any("pixelcnn draws at most 40 samples" in line for line in lines)


def test_a_staged_model_trains_every_stage_from_the_previous_run(tmp_path):
    """vqvae's row is its prior stage, initialised from the autoencoder stage's run; a user's stage
    option compares that stage alone."""
    lines = []
    res = run_compare(
        DataSpec("digits"),
        ["vqvae"],
        tmp_path / "both",
        steps=3,
        batch_size=16,
        options={"vqvae": small_options("vqvae")},
        n_samples=40,
        progress=False,
        log=lines.append,
    )
    out = json.load(open(res.files["json"]))
    (row,) = out["rows"]
    assert row["stages"] == ["stage=autoencoder", "stage=prior"] and row["options"]["stage"] == "prior"
    cfg = json.load(open(tmp_path / "both" / "runs" / "vqvae" / "config.json"))
    assert "vqvae-stage1" in json.dumps(cfg)  # the provenance of --init-from
    assert (tmp_path / "both" / "runs" / "vqvae-stage1" / "checkpoint.pt").exists()
    assert "2 stages" in row["metrics"]["train_time"]["label"]
    assert any("stage 2 of 2" in line for line in lines)
    assert "Trained in stages" in open(res.files["markdown"]).read()
    one = run_compare(
        DataSpec("digits"),
        ["vqvae"],
        tmp_path / "one",
        steps=3,
        batch_size=16,
        options={"vqvae": {**small_options("vqvae"), "stage": "autoencoder"}},
        n_samples=40,
        progress=False,
        log=lambda *a: None,
    )
    (row,) = json.load(open(one.files["json"]))["rows"]
    assert "stages" not in row and row["options"]["stage"] == "autoencoder"


def test_a_model_that_does_not_apply_is_left_out_with_its_reason(tmp_path):
    from deepgen.errors import DataError

    lines = []
    res = run_compare(
        DataSpec("moons", n_train=500), ["independent", "cgan"], tmp_path, steps=3, batch_size=16,
        progress=False, log=lines.append,
    )  # fmt: skip
    assert [r["model"] for r in res.rows] == ["independent"] and "labelled data" in res.skipped["cgan"]
    assert any("leaving out cgan" in line for line in lines)
    assert "Not compared: cgan" in open(res.files["markdown"]).read()
    with pytest.raises(DataError, match="none of the models applies"):
        run_compare(DataSpec("moons", n_train=500), ["cgan"], tmp_path / "b", steps=3, progress=False, log=lines.append)


def test_jobs_run_models_in_parallel_with_the_same_rows(tmp_path):
    """--jobs 2 (one spawned process per model, one thread each) measures what one process does:
    with one thread both ways the rows' NLL and FID are identical, in the order asked."""
    models = ["made", "vae"]
    kw = dict(steps=10, batch_size=32, threads=1, n_samples=60, k=5, progress=False, log=lambda *a: None)
    kw["options"] = {m: small_options(m) for m in models}
    one = run_compare(DataSpec("digits"), models, tmp_path / "one", jobs=1, **kw)
    two = run_compare(DataSpec("digits"), models, tmp_path / "two", jobs=2, **kw)
    assert [r["model"] for r in two.rows] == models
    for a, b in zip(one.rows, two.rows):
        for key in ("nll", "fid"):
            assert a["metrics"][key]["value"] == b["metrics"][key]["value"], (a["model"], key)
    meta = json.load(open(two.files["json"]))["meta"]
    assert meta["jobs"] == 2 and meta["threads"] == 1
    assert "2 models at a time" in open(two.files["markdown"]).read()
    assert "at a time" not in open(one.files["markdown"]).read()


def test_a_time_limit_compares_at_equal_time_and_reports_the_steps_reached(tmp_path, monkeypatch):
    """Each model's training loop reads a scripted clock that gains 10 s per reading (one reading per
    step, one at the start and one at the final checkpoint): with 45 s each, a one-stage model stops at
    step 5 of 100, and vqvae's two stages have 22.5 s each, so 3 steps each."""
    from deepgen.train import engine

    ticks = iter(range(10**6))
    monkeypatch.setattr(engine, "clock", lambda: 10.0 * next(ticks))
    res = run_compare(
        DataSpec("digits"),
        ["independent", "vqvae"],
        tmp_path,
        steps=100,
        batch_size=16,
        options={"vqvae": small_options("vqvae")},
        n_samples=40,
        time_limit=45,
        progress=False,
        log=lambda *a: None,
    )
    out = json.load(open(res.files["json"]))
    assert out["meta"]["time_limit"] == 45
    assert {r["model"]: r["steps"] for r in out["rows"]} == {"independent": [5], "vqvae": [3, 3]}
    table = open(res.files["markdown"]).read()
    assert "at most 45 s" in table and "Steps reached: independent 5; vqvae 3 + 3." in table
    assert "100 steps or 45 s each" in open(res.files["html"]).read()
    with pytest.raises(ConfigError, match="time_limit"):
        run_compare(DataSpec("digits"), ["independent"], tmp_path / "x", steps=3, time_limit=0, log=lambda *a: None)
