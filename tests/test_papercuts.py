"""What a first-time user tripped over (the comparison-numbers issue): one test per papercut.

Commands run in-process through :func:`deepgen.cli.main` (no interpreter start-up per call), so
each test takes a second or two; a traceback escapes as an exception and fails the test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from deepgen.cli import main

ROOT = Path(__file__).parents[1]


def cli(capsys, *args) -> tuple[int, str, str]:
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_line_error(rc: int, err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and lines[0].startswith("deepgen: error:"), err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def images(tmp_path: Path, name: str, shape, seed: int = 0) -> Path:
    path = tmp_path / name
    np.save(path, np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8))
    return path


# 1. image .npy files with 2 or 7 channels ------------------------------------------------------


@pytest.mark.parametrize("channels", [2, 4, 7])
def test_images_with_unsupported_channels_are_refused_at_load_time(tmp_path, capsys, channels):
    f = images(tmp_path, "c.npy", (20, channels, 8, 8))
    rc, out, err = cli(capsys, "train", "independent", "--data", f, "--steps", "2", "--out", tmp_path / "r", "-q")
    one_line_error(rc, err, "c.npy", f"{channels} channels", "1 (grey) or 3 (RGB)")
    assert not (tmp_path / "r").exists()  # refused before any training


def test_channels_last_images_get_a_hint(tmp_path, capsys):
    f = images(tmp_path, "hwc.npy", (20, 8, 8, 3))
    rc, _, err = cli(capsys, "train", "independent", "--data", f, "--steps", "2", "--out", tmp_path / "r", "-q")
    one_line_error(rc, err, "(N, C, H, W)", "channels last")


# 2. missing files and relative paths ------------------------------------------------------------


def test_missing_file_is_not_an_unknown_dataset(tmp_path, capsys):
    for name in (tmp_path / "nope" / "data.csv", "data.csv", "./x.npy", "~/nowhere/imgs/"):
        rc, _, err = cli(capsys, "train", "independent", "--data", name, "--out", tmp_path / "r")
        line = one_line_error(rc, err, "file not found")
        assert "unknown dataset" not in line
    rc, _, err = cli(capsys, "train", "independent", "--data", "mnits", "--out", tmp_path / "r")
    one_line_error(rc, err, "unknown dataset 'mnits'", "Did you mean 'mnist'")


def test_a_run_on_a_relative_path_is_usable_from_another_directory(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    np.savetxt(work / "ints.csv", np.random.default_rng(0).integers(0, 5, (60, 3)), delimiter=",", fmt="%d")
    monkeypatch.chdir(work)
    rc, _, err = cli(capsys, "train", "independent", "--data", "ints.csv", "--steps", "3", "--out", "run", "-q")
    assert rc == 0, err
    spec = json.loads((work / "run" / "config.json").read_text())["data"]
    assert spec["name"] == str(work / "ints.csv")
    monkeypatch.chdir(tmp_path)
    rc, _, err = cli(capsys, "score", work / "run", "--out", tmp_path / "s.csv")
    assert rc == 0, err
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 61  # header + every row of the file


# 3. train-features on any image data ---------------------------------------------------------


def _blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, 1, 8, 8) uint8 images of 3 classes (a bar in a class-dependent place) and their labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 40, (n, 1, 8, 8))
    for i, c in enumerate(y):
        x[i, 0, 1 + 2 * c : 3 + 2 * c, 1:7] = 255
    return x.astype(np.uint8), y


def _folder(tmp_path: Path, labelled: bool) -> Path:
    from PIL import Image

    x, y = _blobs(90)
    root = tmp_path / ("labelled" if labelled else "plain")
    for i, (img, c) in enumerate(zip(x, y)):
        d = root / f"class{c}" if labelled else root
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0]).save(d / f"{i:03d}.png")
    return root


@pytest.mark.parametrize("labelled", [True, False])
def test_train_features_on_an_image_folder_is_usable_by_eval(tmp_path, capsys, labelled):
    root = _folder(tmp_path, labelled)
    net = tmp_path / "feat.pt"
    rc, out, err = cli(capsys, "train-features", "--data", root, "--steps", "30", "--out", net, "-q")
    assert rc == 0, err
    report = torch.load(net, weights_only=True)["report"]
    assert report["objective"] == ("classify" if labelled else "rotation")
    if labelled:
        assert "test accuracy" in out and 0 <= report["test_accuracy"] <= 1 and report["knn_accuracy"] is not None
    else:
        assert "rotation accuracy" in out and 0 <= report["rotation_accuracy"] <= 1
    # the sanity floor: held-out real images are closer to the training set than pixel-shuffled ones
    assert report["fid_held_out"] >= 0 and report["fid_pixel_shuffled"] >= 0
    assert "FID held-out real vs train" in out

    rc, _, err = cli(capsys, "train", "independent", "--data", root, "--steps", "3", "--out", tmp_path / "r", "-q")
    assert rc == 0, err
    rc, out, err = cli(capsys, "eval", tmp_path / "r", "--features", net)
    assert rc == 0, err
    res = json.loads((tmp_path / "r" / "eval.json").read_text())
    fid = res["metrics"]["fid"]
    assert np.isfinite(fid["value"]) and "feat.pt features" in fid["label"]


def test_train_features_refuses_tables_in_one_line(tmp_path, capsys):
    f = tmp_path / "t.npy"
    np.save(f, np.random.default_rng(0).normal(size=(50, 3)))
    rc, _, err = cli(capsys, "train-features", "--data", f, "--out", tmp_path / "f.pt")
    one_line_error(rc, err, "images")


# 4. torchrun: Ctrl-C ---------------------------------------------------------------------------


def test_sigterm_from_torchrun_ends_a_rank_with_130(tmp_path):
    """torchrun forwards SIGINT/SIGTERM to its workers; each rank must save and exit 130, not die."""
    from deepgen.train.distributed import interrupt_on_sigterm

    code = (
        "import os, signal, time\n"
        "from deepgen.train.distributed import interrupt_on_sigterm\n"
        "interrupt_on_sigterm()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM); time.sleep(5)\n"
        "except KeyboardInterrupt:\n"
        "    raise SystemExit(130)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 130, p.stderr
    assert callable(interrupt_on_sigterm)


# 5. messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [np.random.default_rng(1).bytes(3000), b"hello world\n" * 50])
def test_random_bytes_and_text_are_not_called_pickles(tmp_path, capsys, content):
    f = tmp_path / "x.npy"
    f.write_bytes(content)
    rc, _, err = cli(capsys, "eval", f)
    line = one_line_error(rc, err, "not a deepgen checkpoint", "not a zip/torch file")
    assert "pickle" not in line.lower() and "Python objects" not in line
    rc, _, err = cli(capsys, "train", "independent", "--data", f, "--out", tmp_path / "r")
    line = one_line_error(rc, err, "not a .npy file")
    assert "pickle" not in line.lower()
    from deepgen.errors import CheckpointError
    from deepgen.metrics.features import load_feature_network

    with pytest.raises(CheckpointError, match="not a zip/torch file"):
        load_feature_network(str(f))


def test_shorten_cuts_at_a_word_boundary():
    from deepgen.errors import shorten

    text = "Weights only load failed. In PyTorch 2.6, we changed the default value of the argument"
    s = shorten(text, 40)
    assert len(s) <= 40 and s.endswith("...") and text.startswith(s[:-3])
    assert text[len(s) - 3] == " "  # the cut falls between words
    assert shorten("short", 40) == "short"
    assert shorten("x" * 100, 20) == "x" * 17 + "..."


def test_no_mid_word_truncation_left_in_my_modules():
    for rel in ("train/checkpoint.py", "metrics/features.py", "data/files.py"):
        src = (ROOT / "src" / "deepgen" / rel).read_text()
        assert "[:120]" not in src and "[:160]" not in src and "[:200]" not in src, rel


def test_out_of_range_values_print_plain_numbers(tmp_path, capsys):
    from deepgen.data import DataInfo, validate_tensor
    from deepgen.errors import DataError

    f = tmp_path / "b.npy"
    np.save(f, np.array([[0, 1, 1], [1, 0, 2]] * 5, dtype=np.int64))
    rc, _, err = cli(capsys, "train", "independent", "--data", f, "--levels", "2", "--out", tmp_path / "r")
    line = one_line_error(rc, err, "value 2 at row 1, column 2")
    assert "np." not in line
    with pytest.raises(DataError, match=r"value 0.5 at row 0, column 1 is not 0 or 1") as e:
        validate_tensor(torch.tensor([[0.0, 0.5]]), DataInfo("b", (2,), 2))
    assert "np." not in str(e.value) and "nan" not in str(e.value)


@pytest.mark.parametrize("text", ["[128,128]", "[128, 128]", "128,128", "(128,128)", "128, 128", "128 128"])
def test_list_options_parse_with_brackets_and_spaces(text):
    from deepgen.config import from_dict, parse_overrides
    from deepgen.models.vae import VAEConfig

    cfg = from_dict(VAEConfig, parse_overrides([f"hidden={text}"]))
    assert cfg.hidden == (128, 128)
    assert from_dict(VAEConfig, {"hidden": "[]"}).hidden == ()


def test_training_into_an_existing_run_refuses_before_the_banner(tmp_path, capsys):
    args = ("train", "independent", "--data", "digits", "--steps", "2", "--out", tmp_path / "r")
    rc, _, err = cli(capsys, *args, "-q")
    assert rc == 0, err
    rc, out, err = cli(capsys, *args)
    one_line_error(rc, err, "already holds a run", "--overwrite")
    assert out == ""


def test_compare_refuses_to_overwrite_a_previous_comparison(tmp_path, capsys):
    args = ("compare", "--data", "moons", "--models", "independent", "--steps", "2", "--n-samples", "200", "-q")
    out = tmp_path / "cmp"
    rc, _, err = cli(capsys, *args, "--out", out)
    assert rc == 0, err
    before = (out / "results.json").read_text()
    rc, stdout, err = cli(capsys, *args, "--out", out)
    one_line_error(rc, err, f"{out} already holds a comparison", "--overwrite", "choose another --out")
    assert (out / "results.json").read_text() == before and stdout == ""
    rc, _, err = cli(capsys, *args, "--out", out, "--overwrite")
    assert rc == 0, err


# 6. README ------------------------------------------------------------------------------------


def test_readme_says_to_activate_the_venv_and_keeps_outputs_under_runs():
    text = (ROOT / "README.md").read_text()
    two = text.split("## Two commands", 1)[1].split("## Command line", 1)[0]
    assert ". .venv/bin/activate" in two
    cmd = text.split("## Command line", 1)[1].split("## Python", 1)[0]
    for line in cmd.splitlines():
        if line.startswith("deepgen ") and "--out " in line:
            target = line.split("--out ", 1)[1].split()[0]
            assert target.startswith("runs/"), line


def test_wrap_ddp_warns_nothing(tmp_path):
    """The broadcast_buffers FutureWarning every torchrun rank printed (torch 2.13 renamed the argument)."""
    import warnings

    import torch.distributed as dist

    from deepgen.train.distributed import DistInfo, wrap_ddp

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            wrap_ddp(torch.nn.Linear(2, 2), DistInfo())
    finally:
        dist.destroy_process_group()
