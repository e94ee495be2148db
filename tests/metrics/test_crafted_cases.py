"""Every sample-quality metric ranks crafted sample sets in the order their construction implies.

Per metric, the claim is about what the metric measures (``docs/benchmarks.md, section 6``):

* fidelity (mean -log p_data, high-quality fraction, precision, density): the true sampler and every
  collapse (exact conditionals of the data) beat the blob and the single Gaussian;
* diversity (recall, coverage, modes covered, mode-histogram KL): true > drop one mode > two modes >
  one mode; recall also credits the blob and the Gaussian for covering the support;
* overall distances on images (FID, KID): held-out real data beat every corruption, and pixel noise
  with the right marginals beats structure-free noise.

Also: the KID standard error covers 0 for two samples of one distribution at its stated rate, and
matches the Monte Carlo spread of KID when the distributions differ; the FID bootstrap interval
covers the spread of FID over fresh draws.
"""

from __future__ import annotations

import pytest
import torch

from deepgen.data import toy2d
from deepgen.metrics.crafted import image_cases, independent_pixels, toy_case_names, toy_cases
from deepgen.metrics.fid import fid_bootstrap, fid_from_features
from deepgen.metrics.kid import kid
from deepgen.metrics.precision_recall import precision_recall
from deepgen.metrics.toy2d import toy_sample_quality

N_TOY = 1500
GOOD = ("true", "drop_1", "collapse_2", "collapse_1")  # exact (conditional) samples of the data
BAD = ("blob", "gaussian")


def _toy_table(name: str, n: int = N_TOY) -> dict[str, dict]:
    ref = toy2d.sample(name, n, torch.Generator().manual_seed(4242))
    table = {}
    for case, x in toy_cases(name, n, seed=1).items():
        row = toy_sample_quality(name, x)
        row.update(precision_recall(ref, x))
        table[case] = row
    return table


@pytest.fixture(scope="module", params=list(toy2d.TOY2D))
def toy(request):
    return request.param, _toy_table(request.param)


def _chain(t: dict, metric: str, cases, margin: float, higher: bool = True) -> None:
    present = [c for c in cases if c in t]
    for a, b in zip(present, present[1:]):
        va, vb = t[a][metric], t[b][metric]
        ok = va > vb + margin if higher else va < vb - margin
        assert ok, f"{metric}: expected {a} ({va:.4g}) {'>' if higher else '<'} {b} ({vb:.4g}) by {margin}"


def test_fidelity_metrics_put_exact_samples_above_diffuse_ones(toy):
    name, t = toy
    for good in (c for c in GOOD if c in t):
        for bad in BAD:
            # nll_data is inf when samples fall off the checkerboard: still ranked correctly
            assert t[good]["nll_data"] < t[bad]["nll_data"] - 1.0, (name, good, bad)
            for metric in ("high_quality", "precision", "density"):
                assert t[good][metric] > t[bad][metric] + 0.15, (name, metric, good, bad)
    assert t["true"]["high_quality"] == pytest.approx(0.99, abs=0.015)
    assert abs(t["true"]["nll_data"] - t["true"]["entropy"]) < 5 * t["true"]["nll_data_se"] + 0.01


def test_diversity_metrics_rank_collapses(toy):
    name, t = toy
    # with two modes, dropping one *is* the one-mode collapse: no order between them
    fewer = ("drop_1", "collapse_2", "collapse_1") if "collapse_2" in t else ("drop_1",)
    for metric in ("recall", "coverage"):
        # dropping 1 of 25 modes costs only ~0.04: no margin on that step, 0.02 on the others
        _chain(t, metric, ("true", "drop_1"), 0.0)
        _chain(t, metric, fewer, 0.02)
    for bad in BAD:  # recall means "the model covers the data": a diffuse blob does
        assert t[bad]["recall"] > t["true"]["recall"] - 0.05, (name, bad)
        assert t[bad]["coverage"] < t["true"]["coverage"], (name, bad)
    if t["true"]["modes"] is None:
        assert name == "swissroll"
        return
    k = t["true"]["total_modes"]
    expect = {"true": k, "drop_1": k - 1, "collapse_2": 2, "collapse_1": 1}
    assert {c: t[c]["modes"] for c in expect if c in t} == {c: v for c, v in expect.items() if c in t}
    assert t["true"]["mode_kl"] < 0.05
    assert t["true"]["mode_kl"] < min(t[c]["mode_kl"] for c in ("blob", "gaussian", "drop_1"))
    _chain(t, "mode_kl", fewer, 0.1, higher=False)


def test_blob_no_longer_captures_every_8gaussians_mode():
    # the case: a diffuse blob got "modes captured 8 of 8" and looked perfect
    x = toy_cases("8gaussians", 2500, seed=3)["blob"]
    q = toy_sample_quality("8gaussians", x)
    assert q["modes"] <= 4 and q["high_quality"] < 0.6 and q["mode_kl"] > 0.5
    assert toy_case_names("swissroll") == ["true", "blob", "gaussian"]


# --------------------------------------------------------------------------- KID and FID errors


def test_kid_se_covers_zero_at_its_stated_rate_for_one_distribution():
    g = torch.Generator().manual_seed(0)
    vals, ses = [], []
    for _ in range(400):  # 128-d like the feature networks; two halves of one real set
        both = torch.randn(300, 128, generator=g)
        out = kid(both[:150], both[150:])
        vals.append(out["kid"])
        ses.append(out["se"])
    v, s = torch.tensor(vals), torch.tensor(ses)
    cover = (v.abs() <= 2 * s).double().mean().item()
    # stated: the jackknife s.e. is conservative, +-2 s.e. covers 0 in >= 95% (measured ~99%)
    assert 0.95 <= cover <= 1.0, cover
    assert abs(v.mean().item()) < 3 * v.std().item() / 20  # unbiased: centred on 0
    ratio = s.pow(2).mean().sqrt().item() / v.std().item()
    assert 1.0 < ratio < 1.8, ratio  # conservative, but not uselessly so


def test_kid_se_matches_the_spread_of_kid_when_distributions_differ():
    g = torch.Generator().manual_seed(1)
    vals, se_jk, se_u = [], [], []
    for _ in range(300):
        x = torch.randn(120, 64, generator=g)
        y = 1.1 * torch.randn(200, 64, generator=g) + 0.1
        out = kid(x, y, chunk=50)
        vals.append(out["kid"])
        se_jk.append(out["se"])
        se_u.append(out["se_unbiased"])
    sd = torch.tensor(vals).std().item()
    assert torch.tensor(vals).mean().item() > 5 * sd / 17  # the shift is detected on average
    for se in (se_jk, se_u):
        assert 0.85 < torch.tensor(se).pow(2).mean().sqrt().item() / sd < 1.25


def test_fid_bootstrap_interval_covers_the_spread_of_fid():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(2000, 16, generator=g)

    def draw():
        return 1.2 * torch.randn(400, 16, generator=g) + 0.2

    fids = torch.tensor([fid_from_features(real, draw()) for _ in range(60)])
    out = fid_bootstrap(real, draw(), n_boot=100, generator=g)
    assert out["low"] < out["fid"] < out["high"]
    assert 0.6 < out["se"] / fids.std().item() < 1.6
    assert out["bootstrap_bias"] > 0  # FID is biased upward at finite n


# --------------------------------------------------------------------------- images (digits)


@pytest.fixture(scope="module")
def digits_table():
    from deepgen.data import DataSpec, load_dataset
    from deepgen.metrics.features import extract, load_feature_network

    ds = load_dataset(DataSpec("digits"))
    train = torch.cat([ds.train.x, ds.val.x])
    net = load_feature_network("deepgen-digits")
    ref, _ = extract(net, train)
    n = len(ds.test.x)  # 360: every row uses the same number of samples
    ref_pr = ref[torch.randperm(len(ref), generator=torch.Generator().manual_seed(0))[:n]]
    table = {}
    for case, x in image_cases(ds.test.x, ds.test.y, train, 17, n).items():
        f, _ = extract(net, x)
        row = {"fid": fid_from_features(ref, f), **kid(ref, f)}
        row.update(precision_recall(ref_pr, f, k=5))
        table[case] = row
    return table


def test_digits_fid_and_kid_rank_the_crafted_sets(digits_table):
    t = digits_table
    for metric in ("fid", "kid"):
        for other in ("noisy", "blur", "single_class", "independent", "uniform_noise"):
            assert t["real"][metric] < t[other][metric], (metric, other)
        _chain(t, metric, ("uniform_noise", "independent", "noisy", "real"), 0.0)
    for other in ("noisy", "blur", "single_class", "independent", "uniform_noise"):
        gap = t[other]["kid"] - t["real"]["kid"]
        assert gap > 2 * (t[other]["se"] ** 2 + t["real"]["se"] ** 2) ** 0.5, other


def test_digits_fidelity_and_diversity_metrics(digits_table):
    t = digits_table
    corrupted = ("noisy", "blur", "independent", "uniform_noise")
    for metric in ("precision", "density"):  # fidelity: one class of real digits is still real
        for other in corrupted:
            assert t["real"][metric] > t[other][metric] + 0.1, (metric, other)
        assert t["single_class"][metric] > t["real"][metric] - 0.1, metric
        assert t["uniform_noise"][metric] == min(r[metric] for r in t.values()), metric
    for metric in ("recall", "coverage"):  # diversity: one class covers a tenth of the data
        for other in (*corrupted, "single_class"):
            assert t["real"][metric] > t[other][metric] + 0.1, (metric, other)
        assert t["single_class"][metric] < 0.25, metric


def test_independent_pixels_match_the_training_marginals():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(0, 5, (4000, 1, 2, 2), generator=g).float() / 4
    train[:, 0, 0, 0] = 0.25  # a constant pixel stays constant (up to the add-1/2 smoothing)
    x = independent_pixels(train, 5, 4000, g)
    assert ((x[:, 0, 0, 0] == 0.25).double().mean() > 0.99).item()
    assert torch.allclose(x.mean(0), train.mean(0), atol=0.03)
