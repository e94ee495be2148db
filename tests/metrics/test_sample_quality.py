"""FID (against scipy's sqrtm reference), KID, precision/recall, Inception Score, toy metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import linalg

from deepgen.metrics.fid import GaussianStats, fid_from_features, frechet_distance, trace_sqrt_product
from deepgen.metrics.inception_score import inception_score
from deepgen.metrics.kid import gaussian_mmd2, kernel_inception_distance, polynomial_kernel
from deepgen.metrics.precision_recall import precision_recall
from deepgen.metrics.toy2d import mode_coverage


def scipy_reference(mu1, s1, mu2, s2):
    """The pytorch-fid formula: scipy sqrtm of S1 S2, real part, eps offset if not finite."""
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean[0] if isinstance(covmean, tuple) else covmean
    if not np.isfinite(covmean).all():
        off = np.eye(len(s1)) * 1e-6
        covmean = linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    d = mu1 - mu2
    return d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


def random_cov(rng, d, n):
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    return np.cov(x, rowvar=False)


@pytest.mark.parametrize("seed", range(4))
def test_frechet_matches_scipy_on_random_covariances(seed):
    rng = np.random.default_rng(seed)
    d = 32
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = random_cov(rng, d, 200), random_cov(rng, d, 300)
    ours, ref = frechet_distance(mu1, s1, mu2, s2), scipy_reference(mu1, s1, mu2, s2)
    assert ours == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_frechet_matches_scipy_on_near_singular_covariances(seed):
    rng = np.random.default_rng(seed)
    d = 24
    # eigenvalues spanning 1 .. 1e-9: ill-conditioned but positive definite
    q1, _ = np.linalg.qr(rng.normal(size=(d, d)))
    q2, _ = np.linalg.qr(rng.normal(size=(d, d)))
    s1 = (q1 * np.logspace(0, -9, d)) @ q1.T
    s2 = (q2 * np.logspace(0, -9, d)) @ q2.T
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    ours, ref = frechet_distance(mu1, s1, mu2, s2), scipy_reference(mu1, s1, mu2, s2)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_trace_sqrt_never_complex_on_rank_deficient_inputs():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 40))  # 10 samples in 40 dims: rank 9 covariance
    b = rng.normal(size=(12, 40))
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    sq = linalg.sqrtm(s1 @ s2)
    sq = sq[0] if isinstance(sq, tuple) else sq
    assert np.iscomplexobj(sq) and np.abs(np.imag(sq)).max() > 0  # scipy's answer has an imaginary part
    t = trace_sqrt_product(torch.tensor(s1), torch.tensor(s2))
    assert np.isfinite(t) and t >= 0
    assert t == pytest.approx(np.trace(np.real(sq)), rel=1e-4, abs=1e-6)


def test_fid_of_a_set_with_itself_is_zero_and_stats_merge():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(500, 16, generator=g) * torch.rand(16, generator=g) * 3 + 1
    assert fid_from_features(f, f) < 1e-9 * GaussianStats.of(f).cov.trace().item()
    whole = GaussianStats.of(f)
    parts = GaussianStats(16).update(f[:123]).merge(GaussianStats(16).update(f[123:]))
    assert parts.n == 500
    assert torch.allclose(whole.mean, parts.mean) and torch.allclose(whole.cov, parts.cov)
    assert torch.allclose(whole.cov, torch.from_numpy(np.cov(f.double().numpy(), rowvar=False)))
    assert fid_from_features(f, f + 1.0) == pytest.approx(16.0, abs=1e-6)  # a pure mean shift


def test_kid_matches_brute_force_and_is_unbiased():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 5, generator=g), torch.randn(40, 5, generator=g) + 0.5
    kxx, kyy, kxy = (
        polynomial_kernel(x.double(), x.double()),
        polynomial_kernel(y.double(), y.double()),
        polynomial_kernel(x.double(), y.double()),
    )
    m = 40
    brute = sum(kxx[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    brute += sum(kyy[i, j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    brute -= 2 * kxy.mean()
    kid, _ = kernel_inception_distance(x, y, n_subsets=1, subset_size=40)
    assert kid == pytest.approx(float(brute), rel=1e-9)
    same = [
        kernel_inception_distance(torch.randn(200, 8, generator=g), torch.randn(200, 8, generator=g), n_subsets=1)[0]
        for _ in range(30)
    ]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(30)  # unbiased: centred on 0
    far, std = kernel_inception_distance(torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g) + 1)
    assert far > 10 * max(std, 1e-6)


def test_precision_recall_behaviour():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 4, generator=g)
    assert precision_recall(real, real)["precision"] == 1.0 and precision_recall(real, real)["recall"] == 1.0
    far = precision_recall(real, real + 100)
    assert far["precision"] == 0 and far["recall"] == 0 and far["coverage"] == 0
    # mode collapse: samples from half of the data's modes only -> precision high, recall about half
    centers = torch.tensor([[10.0, 0, 0, 0], [-10.0, 0, 0, 0]])
    data = centers[torch.arange(600) % 2] + 0.3 * torch.randn(600, 4, generator=g)
    collapsed = centers[0] + 0.3 * torch.randn(600, 4, generator=g)
    pr = precision_recall(data, collapsed)
    assert pr["precision"] > 0.9 and 0.4 < pr["recall"] < 0.6


def test_inception_score_bounds():
    assert inception_score(torch.zeros(100, 10))[0] == pytest.approx(1.0)
    one_hot = torch.full((1000, 10), -1e4)
    one_hot[torch.arange(1000), torch.arange(1000) % 10] = 0
    assert inception_score(one_hot)[0] == pytest.approx(10.0, rel=1e-6)


def test_mode_coverage_and_mmd():
    from deepgen.data import toy2d

    centers, std = toy2d.mode_centers("8gaussians")
    x = toy2d.sample("8gaussians", 2500, torch.Generator().manual_seed(0))
    cov = mode_coverage(x, centers, std)
    assert cov["modes"] == 8 and cov["high_quality"] > 0.95  # 3 std in 2D holds 98.9%
    one = centers[0] + std * torch.randn(2500, 2, generator=torch.Generator().manual_seed(1))
    assert mode_coverage(one, centers, std)["modes"] == 1
    y = toy2d.sample("8gaussians", 1000, torch.Generator().manual_seed(2))
    assert abs(gaussian_mmd2(x[:1000], y)) < 0.01 < gaussian_mmd2(x[:1000], one[:1000])


def test_kid_all_pairs_matches_brute_force_and_chunking():
    from deepgen.metrics.kid import kid, mmd2_unbiased, real_kernel_sums

    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(37, 6, generator=g).double(), (torch.randn(23, 6, generator=g) + 0.3).double()
    k = (polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y))
    whole = kid(x, y)
    assert whole["kid"] == pytest.approx(mmd2_unbiased(*k), rel=1e-10)
    chunked = kid(x, y, chunk=5, real_sums=real_kernel_sums(x, chunk=7))
    for key in ("kid", "se", "se_unbiased"):
        assert chunked[key] == pytest.approx(whole[key], rel=1e-9)

    # jackknife by brute force: recompute the U-statistic with each example left out
    def u(a, b):
        return mmd2_unbiased(polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b))

    tx = torch.tensor([u(torch.cat([x[:i], x[i + 1 :]]), y) for i in range(len(x))])
    ty = torch.tensor([u(x, torch.cat([y[:j], y[j + 1 :]])) for j in range(len(y))])
    var = (len(x) - 1) / len(x) * ((tx - tx.mean()) ** 2).sum() + (len(y) - 1) / len(y) * ((ty - ty.mean()) ** 2).sum()
    assert whole["se"] == pytest.approx(var.sqrt().item(), rel=1e-6)  # brute force loses digits
    with pytest.raises(ValueError):
        kid(x[:3], y)


def test_fid_bootstrap_with_fixed_reference_stats():
    from deepgen.metrics.fid import fid_bootstrap

    g = torch.Generator().manual_seed(4)
    real, fake = torch.randn(500, 8, generator=g), torch.randn(300, 8, generator=g) + 0.5
    fixed = fid_bootstrap(GaussianStats.of(real), fake, n_boot=50)
    both = fid_bootstrap(real, fake, n_boot=50)
    assert fixed["fid"] == pytest.approx(fid_from_features(real, fake)) == both["fid"]
    assert 0 < fixed["se"] < both["se"]  # resampling the reference too adds its uncertainty
    assert fixed["low"] <= fixed["fid"] <= fixed["high"] and fixed["n_real"] == 500


def test_toy_sample_quality_on_true_and_collapsed_8gaussians():
    from deepgen.data import toy2d
    from deepgen.metrics.toy2d import assign_modes, toy_sample_quality

    centers, std = toy2d.mode_centers("8gaussians")
    assert torch.equal(assign_modes("8gaussians", centers + 0.1), torch.arange(8))
    x = toy2d.sample("8gaussians", 2000, torch.Generator().manual_seed(0))
    q = toy_sample_quality("8gaussians", x)
    assert q["modes"] == 8 and q["mode_kl"] < 0.02 and 0.97 < q["high_quality"] <= 1
    assert abs(q["nll_data"] - q["entropy"]) < 4 * q["nll_data_se"]
    one = centers[0] + std * torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))
    c = toy_sample_quality("8gaussians", one)
    assert c["modes"] == 1 and c["mode_kl"] > 4 and c["high_quality"] > 0.97
    assert c["mode_counts"][0] > 1900 and sum(c["mode_counts"]) == 2000
    assert toy_sample_quality("swissroll", x)["modes"] is None
    far = toy_sample_quality("checkerboard", torch.full((10, 2), 10.0))
    assert far["nll_data"] == float("inf") and far["high_quality"] == 0 and far["modes"] == 0
