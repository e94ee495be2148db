"""Level-set clustering: recovers a well-separated mixture's components (grid in 2-D, k-NN graph in
more dimensions), ignores the unknown log Z of unnormalised densities, and runs from the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from deepgen.cli import main
from deepgen.cluster import level_set_clusters
from deepgen.errors import ConfigError


def _mixture(dim: int, n: int = 1500, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.zeros(3, dim)
    centres[0, 0], centres[1, 0], centres[2, 1] = -4.0, 4.0, 5.0
    y = torch.randint(0, 3, (n,), generator=g)
    x = centres[y] + 0.5 * torch.randn(n, dim, generator=g)

    def log_density(v):
        d = ((v.unsqueeze(1) - centres) ** 2).sum(-1)
        return torch.logsumexp(-d / (2 * 0.25), 1) - math.log(3) - dim / 2 * math.log(2 * math.pi * 0.25)

    return x, y.numpy(), log_density


@pytest.mark.parametrize("dim, method", [(2, "grid"), (2, "knn"), (5, "knn")])
def test_level_sets_recover_the_components_of_a_separated_mixture(dim, method):
    x, y, log_density = _mixture(dim)
    res = level_set_clusters(log_density, x, method=method, assign="nearest")
    assert res.n_clusters == 3, res.sizes
    assert adjusted_rand_score(y, res.labels) >= 0.9
    assert res.method == method and 0.95 * 1200 <= sum(res.sizes) <= (res.log_density >= res.level).sum()


def test_an_unknown_log_partition_function_changes_nothing():
    x, _, log_density = _mixture(2)
    a = level_set_clusters(log_density, x)
    b = level_set_clusters(lambda v: log_density(v) + 123.4, x)
    assert np.array_equal(a.labels, b.labels) and b.level == pytest.approx(a.level + 123.4)
    assert (a.labels < 0).mean() == pytest.approx(0.2, abs=0.01)  # keep = 0.8 by default


def test_a_very_high_level_leaves_points_unclustered_and_bad_options_fail():
    x, _, log_density = _mixture(5)
    res = level_set_clusters(log_density, x, level=1e9)
    assert res.n_clusters == 0 and (res.labels == -1).all()
    with pytest.raises(ConfigError):
        level_set_clusters(log_density, x, method="grid")
    with pytest.raises(ConfigError):
        level_set_clusters(log_density, x, keep=0)


def test_cli_on_a_2d_toy_and_on_digits(tmp_path, capsys):
    assert main(["train", "gmm", "--data", "8gaussians", "--steps", "300", "--threads", "1", "-q",
                 "--no-progress", "--out", str(tmp_path / "g")]) == 0  # fmt: skip
    assert main(["cluster", str(tmp_path / "g"), "-n", "800", "--out", str(tmp_path / "c")]) == 0
    summary = json.loads((tmp_path / "c" / "clusters.json").read_text())
    assert summary["method"] == "grid" and summary["clusters"] >= 2 and (tmp_path / "c" / "clusters.png").exists()
    assert main(["train", "independent", "--data", "digits", "--steps", "50", "--threads", "1", "-q",
                 "--no-progress", "--out", str(tmp_path / "d")]) == 0  # fmt: skip
    assert main(["cluster", str(tmp_path / "d"), "--keep", "0.5", "--out", str(tmp_path / "dc")]) == 0
    summary = json.loads((tmp_path / "dc" / "clusters.json").read_text())
    assert summary["method"] == "knn" and "ari_vs_labels_all" in summary
    assert (tmp_path / "dc" / "clusters.png").exists()
    rows = (tmp_path / "dc" / "labels.csv").read_text().splitlines()
    assert rows[0] == "index,cluster,log_density" and len(rows) == 361
