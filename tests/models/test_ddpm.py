"""DDPM through the model's own API, with its network swapped for exact denoisers where the answer is known.

For x0 ~ N(mu, diag(s^2)) and x_t = a x0 + sigma eps: E[eps | x_t] = sigma (x_t - a mu) / (a^2 s^2 + sigma^2),
so every sampler must return N(mu, s^2), and the probability-flow ODE's density is the Gaussian marginal.
For x0 = +-1 equally likely (binary data), E[x0 | x_t] = tanh(a x_t / sigma^2) and the bound over all T
steps must be close to the entropy log 2. The exact networks replace ``model.network`` (network time ->
timestep -> alpha_bar), so the model's own time scaling, conversions and guidance are exercised.
"""

from __future__ import annotations

import math

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.errors import ConfigError, DataError
from deepgen.models.diffusion import DDPM, DDPMConfig

MU = torch.tensor([0.5, -0.3])
S = torch.tensor([0.8, 0.5])
N = 4000


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _ab(model, time):
    """alpha_bar at the network's time input (time = t * 1000 / T)."""
    t = time.double() * model.config.timesteps / 1000
    return model.sde.alpha_bar_at(t).view(-1, 1)


def _from_eps(model, x, ab, eps):
    a, sig = ab.sqrt(), (1 - ab).sqrt()
    x0 = (x - sig * eps) / a
    return {"eps": eps, "x0": x0, "v": a * eps - sig * x0}[model.config.prediction]


def gaussian_network(model, mu=MU, s=S, var_out=None):
    """The exact network of Gaussian data N(mu, diag(s^2)), in the model's prediction."""

    def network(x, time, y=None):
        ab = _ab(model, time).to(x.dtype)
        a, sig = ab.sqrt(), (1 - ab).sqrt()
        eps = sig * (x - a * mu) / (a * a * s * s + sig * sig)
        pred = _from_eps(model, x, ab, eps)
        return (pred,) if var_out is None else (pred, torch.full_like(x, var_out))

    return network


def mixture_network(model, means, s=0.5):
    """Exact network of the class-conditional Gaussians N(means[c], s^2 I); the null label: their equal mixture."""

    def network(x, time, y):
        ab = _ab(model, time).to(x.dtype)
        a, sig = ab.sqrt(), (1 - ab).sqrt()
        var = a * a * s * s + sig * sig
        m = a.unsqueeze(1) * means  # (B, C, D): the classes' means of x_t
        post = -0.5 * ((x.unsqueeze(1) - m) ** 2).sum(-1) / var  # (B, C) log-likelihoods up to a constant
        c = len(means)
        prior = torch.nn.functional.one_hot(y.clamp(max=c - 1), c).float()
        prior = torch.where((y < c).unsqueeze(1), prior, 1.0)  # the null label c: every class
        w = torch.softmax(post + prior.log(), 1)  # the class posterior (one-hot for a real label)
        eps = sig * (x - (w.unsqueeze(-1) * m).sum(1)) / var
        return (eps,)

    return network


def assert_moments(x, mu=MU, s=S, z=4.5):
    n = len(x)
    mean_z = (x.mean(0) - mu) / (s / math.sqrt(n))
    std_z = (x.std(0) - s) / (s / math.sqrt(2 * n))
    assert mean_z.abs().max() < z and std_z.abs().max() < z, (mean_z.tolist(), std_z.tolist())


def gaussian_model(**options):
    model = DDPM(DataInfo("gauss", (2,)), DDPMConfig(hidden=(8,), **options)).eval()
    model.network = gaussian_network(model)
    return model


# -- training objective --------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_loss_is_the_mse_of_the_chosen_target(prediction, digits):
    model = DDPM(digits.info, DDPMConfig(timesteps=50, prediction=prediction, channels=(8, 16), layers_per_block=1))
    torch.nn.init.normal_(model.net.conv_out.weight, std=0.1)  # a network whose output is not 0
    x = digits.train.x[:6]
    t = torch.tensor([0, 3, 17, 25, 40, 49])
    noise = torch.randn(x.shape, generator=_gen(1))
    ab = model.schedule.alpha_bar[t].float().view(-1, 1, 1, 1)
    x0 = 2 * x - 1  # the lattice k / 16 -> -1 + 2k / 16
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    out = model.net(x_t, t.float() * 1000 / 50)
    target = {"eps": noise, "x0": x0, "v": ab.sqrt() * noise - (1 - ab).sqrt() * x0}[prediction]
    loss = model.loss(x, t=t, noise=noise)
    assert torch.allclose(loss["loss"], (out - target).pow(2).mean(), rtol=1e-5)
    assert loss["loss"] > 0.01


def test_hybrid_loss_trains_only_the_variance_through_the_bound():
    model = DDPM(DataInfo("gauss", (2,)), DDPMConfig(timesteps=30, variance="learned", hidden=(8,), vb_weight=1.0))
    pred = torch.randn(8, 2, generator=_gen(1)).requires_grad_()
    var = torch.zeros(8, 2, requires_grad=True)
    model.network = lambda x, time, y: (pred, var)
    # t >= 1: every term of the bound is then a KL divergence, > 0 (t = 0's decoder NLL of continuous
    # data can be negative, and an unseeded prediction made this test depend on torch's random seed)
    x, t, noise = torch.randn(8, 2, generator=_gen(2)), 1 + torch.arange(8) * 3, torch.randn(8, 2, generator=_gen(3))
    out = model.loss(x, t=t, noise=noise)
    out["loss"].backward()
    assert out["vb_bpd"] > 0 and torch.allclose(out["loss"], out["mse"] + out["vb_bpd"])
    # the bound reaches the variance output only: the prediction's gradient is the MSE's alone
    assert torch.allclose(pred.grad, 2 * (pred - noise).detach() / pred.numel())
    assert var.grad.abs().sum() > 0


def test_learned_variance_at_its_ends_is_the_fixed_small_and_large_variance():
    info = DataInfo("gauss", (2,))
    for var_out, fixed in [(-1.0, "fixed-small"), (1.0, "fixed-large")]:
        learned = DDPM(info, DDPMConfig(timesteps=100, variance="learned", hidden=(8,))).eval()
        learned.network = gaussian_network(learned, var_out=var_out)
        ref = gaussian_model(timesteps=100, variance=fixed)
        for steps in (None, 20):  # every timestep and respaced
            a = learned.sample(50, generator=_gen(4), steps=steps)
            b = ref.sample(50, generator=_gen(4), steps=steps)
            assert torch.allclose(a, b, atol=1e-5), (fixed, steps)
        if (
            fixed == "fixed-small"
        ):  # (fixed-large's t = 0 term uses beta-tilde_1, learned's beta_0, as in improved DDPM)
            x = MU + S * torch.randn(20, 2, generator=_gen(5))
            torch.manual_seed(0)
            la = learned.log_likelihood(x).values
            torch.manual_seed(0)
            assert torch.allclose(la, ref.log_likelihood(x).values, atol=1e-4)


def test_a_short_training_run_learns_a_gaussian():
    torch.manual_seed(0)
    model = DDPM(DataInfo("gauss", (1,)), DDPMConfig(timesteps=100, schedule="cosine", hidden=(64, 64)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss = model.loss(1.5 + 0.5 * torch.randn(256, 1))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = model.eval().sample(2000, generator=_gen(6), sampler="ddim", steps=50)
    assert abs(x.mean() - 1.5) < 0.1 and 0.4 < x.std() < 0.6, (x.mean(), x.std())


# -- sampling --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule, prediction, sampler, steps",
    [
        ("linear", "eps", "ancestral", None),
        ("linear", "v", "ddim", 200),
        ("linear", "x0", "heun", 40),
        ("linear", "eps", "dpm", 40),
        ("cosine", "v", "ancestral", 250),
        ("cosine", "eps", "heun", 40),
        ("cosine", "x0", "dpm", 40),
    ],
)
def test_every_sampler_returns_the_data_gaussian_with_the_exact_denoiser(schedule, prediction, sampler, steps):
    model = gaussian_model(schedule=schedule, prediction=prediction)
    assert_moments(model.sample(N, generator=_gen(2), sampler=sampler, steps=steps))


def test_guidance_sharpens_classes_and_zero_is_the_conditional_model():
    info = DataInfo("two", (2,), num_classes=2)
    model = DDPM(info, DDPMConfig(timesteps=200, class_conditional=True, hidden=(8,))).eval()
    means = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    model.network = mixture_network(model, means)
    y = torch.zeros(N, dtype=torch.long)
    opts = {"sampler": "ancestral"}  # every timestep: no discretisation error
    plain = model.sample(N, generator=_gen(7), y=y, guidance=0, **opts)
    assert_moments(plain, means[0], torch.tensor([0.5, 0.5]))  # w = 0: the conditional model itself
    near = model.sample(N, generator=_gen(7), y=y, guidance=1e-6, **opts)
    assert (near - plain).abs().max() < 1e-4  # the guided path is continuous at w = 0
    guided = model.sample(N, generator=_gen(7), y=y, guidance=3, **opts)
    assert guided[:, 0].mean() < plain[:, 0].mean() - 0.1  # pushed away from class 1
    assert guided[:, 0].std() < plain[:, 0].std()
    uncond = model.sample(N, generator=_gen(7), y=y, guidance=-1, **opts)  # w = -1: the null label's mixture
    assert abs(uncond[:, 0].mean()) < 0.1 and abs(uncond[:, 0].std() - math.sqrt(1.25)) < 0.06


def test_guidance_changes_a_conditional_network_and_needs_one(digits):
    options = dict(timesteps=30, channels=(8, 16), layers_per_block=1, class_conditional=True)
    model = DDPM(digits.info, DDPMConfig(**options)).eval()
    torch.nn.init.normal_(model.net.conv_out.weight, std=0.3)
    torch.nn.init.normal_(model.net.class_embedding.weight)
    y = torch.arange(6)
    a = model.sample(6, generator=_gen(8), y=y, sampler="ddim", steps=10)
    b = model.sample(6, generator=_gen(8), y=y, sampler="ddim", steps=10, guidance=4.0)
    assert not torch.equal(a, b)
    with pytest.raises(ConfigError, match="p_uncond=0"):
        DDPM(digits.info, DDPMConfig(**options, p_uncond=0.0)).sample(2, guidance=2)
    with pytest.raises(ConfigError, match="class-conditional"):
        DDPM(digits.info, DDPMConfig(timesteps=30, channels=(8, 16), layers_per_block=1)).sample(2, guidance=2)
    with pytest.raises(DataError, match="pass the labels"):
        model.log_likelihood(digits.test.x[:2])


def test_sampling_options_from_strings_and_descriptions(digits):
    model = DDPM(digits.info, DDPMConfig(**DDPM.test_options)).eval()
    s = model.sample(3, generator=_gen(9), sampler="ddim", steps="5", eta="0.5", guidance="0", clip="false")
    assert s.shape == (3, 1, 8, 8)
    k = s * 16
    assert torch.allclose(k, k.round()) and s.min() >= 0 and s.max() <= 1  # on the lattice, even unclipped
    opts = model.sample_options(sampler="dpm", steps="7", guidance="1.5")
    assert DDPM.describe_sampling(opts) == "DPM-Solver++(2M), 7 steps, guidance w=1.5"
    assert DDPM.describe_sampling(DDPM.sample_options()) == "ancestral, every timestep"


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: {"timesteps": 10}, "T >= 21"),
        (lambda: {"schedule": "quadratic"}, "schedule"),
        (lambda: {"prediction": "z"}, "prediction"),
        (lambda: {"p_uncond": "1"}, "p_uncond"),
        (lambda: DDPM(DataInfo("img", (1, 8, 8), 17), DDPMConfig(attention_levels=(2,))), "attention_levels"),
        (lambda: DDPM.sample_options(sampler="euler"), "sampler"),
        (lambda: DDPM.sample_options(steps=0), "steps"),
        (lambda: DDPM.sample_options(eta=-1, sampler="ddim"), "eta"),
        (lambda: DDPM.sample_options(eta=0.5), "ddim"),
        (lambda: DDPM.sample_options(guidance=-2), "guidance"),
        (lambda: DDPM.sample_options(stepz=3), "valid: clip, eta, guidance, sampler, steps"),
        (lambda: gaussian_model(timesteps=30).sample(2, clip=True), "clip needs discrete data"),
        (lambda: gaussian_model(timesteps=30).sample(2, steps=31), "between 1 and"),
        (lambda: gaussian_model(timesteps=30).edit(torch.zeros(2, 2), 1.5), "strength"),
        (lambda: gaussian_model(timesteps=30).log_likelihood(torch.zeros(2, 2), method="elbo"), "methods: ode"),
    ],
)
def test_bad_options_are_one_line_config_errors(make, match):
    from deepgen.config import from_dict

    with pytest.raises(ConfigError, match=match) as info:
        out = make()
        if isinstance(out, dict):
            from_dict(DDPMConfig, out)
    assert "\n" not in str(info.value)


# -- editing ---------------------------------------------------------------------------------------------


def test_edit_strength_zero_returns_the_input_and_one_ignores_it():
    model = gaussian_model(timesteps=100)
    x1, x2 = torch.randn(5, 2, generator=_gen(10)), torch.randn(5, 2, generator=_gen(11))
    assert torch.equal(model.edit(x1, 0.0, generator=_gen(12)), x1)
    e1 = model.edit(x1, 1.0, generator=_gen(12), sampler="ddim", steps=10)
    e2 = model.edit(x2, 1.0, generator=_gen(12), sampler="ddim", steps=10)
    assert torch.equal(e1, e2) and torch.equal(e1, model.sample(5, generator=_gen(12), sampler="ddim", steps=10))


@pytest.mark.parametrize("sampler", ["ancestral", "ddim", "dpm"])
def test_edits_of_data_keep_the_data_distribution_and_their_correlation_with_the_input(sampler):
    # SDEdit from x_t ~ q(x_t | x) with the exact denoiser: the output keeps the data's distribution, and
    # its correlation with x is that of x_t (a deterministic sampler maps x_t affinely: a s / sqrt(v)) or
    # of a draw from p(x0 | x_t) (ancestral: a^2 s^2 / v), with v = a^2 s^2 + 1 - a^2 at the start step.
    model = gaussian_model(timesteps=1000)
    x = MU + S * torch.randn(N, 2, generator=_gen(13))
    steps = {"ancestral": None, "ddim": 200, "dpm": 40}[sampler]
    for strength in (0.1, 0.5):
        out = model.edit(x, strength, generator=_gen(14), sampler=sampler, steps=steps)
        assert_moments(out)
        ab = float(model.schedule.alpha_bar[math.ceil(strength * 1000) - 1])
        v = ab * S[0] ** 2 + 1 - ab
        expected = ab * S[0] ** 2 / v if sampler == "ancestral" else math.sqrt(ab) * S[0] / v.sqrt()
        corr = torch.corrcoef(torch.stack([x[:, 0], out[:, 0]]))[0, 1]
        assert abs(corr - expected) < 0.04, (strength, corr, expected)


def test_edit_of_a_conditional_model_needs_labels(digits):
    model = DDPM(digits.info, DDPMConfig(**DDPM.test_options, class_conditional=True)).eval()
    x = digits.test.x[:3]
    with pytest.raises(DataError, match="pass the labels"):
        model.edit(x, 0.5)
    out = model.edit(x, 0.5, y=digits.test.y[:3], generator=_gen(15), steps=5)
    assert out.shape == x.shape and torch.allclose(out * 16, (out * 16).round())


# -- densities -------------------------------------------------------------------------------------------


def test_bound_of_the_exact_denoiser_on_binary_data_is_close_to_the_entropy():
    model = DDPM(DataInfo("bit", (1,), levels=2), DDPMConfig(timesteps=1000, hidden=(8,))).eval()

    def network(x, time, y=None):
        ab = _ab(model, time).to(x.dtype)
        x0 = torch.tanh(ab.sqrt() * x / (1 - ab))
        return ((x - ab.sqrt() * x0) / (1 - ab).sqrt(),)

    model.network = network
    x = torch.randint(0, 2, (2000, 1), generator=_gen(16)).float()
    torch.manual_seed(0)
    ll = model.log_likelihood(x)
    assert ll.kind.value == "lower bound" and "T=1000" in ll.method
    nll, se = -ll.values.mean().item(), ll.values.std().item() / math.sqrt(len(x))
    assert math.log(2) - 4 * se < nll < math.log(2) + 0.02, (nll, se)  # measured 0.6924 +- 0.003
    est = model.bound(x, strata=50)  # the trainer's unbiased 50-timestep estimate
    assert abs(est.mean().item() - nll) < 6 * est.std().item() / math.sqrt(len(x))
    ll4 = model.log_likelihood(x[:10], k=4)
    assert ll4.stderr.shape == (10,) and "mean of 4 draws" in ll4.method


def test_ode_likelihood_of_the_exact_denoiser_is_the_gaussian_log_density():
    # cosine: alpha_bar at tau = 1 is ~1e-9, so the N(0, I) prior is the true marginal there
    model = gaussian_model(timesteps=1000, schedule="cosine", ode_tol=1e-6)
    x = MU + S * torch.randn(6, 2, generator=_gen(17))
    with torch.no_grad():
        ll = model.log_likelihood(x, method="ode")
    ab0 = float(model.schedule.alpha_bar[0])  # the density at the first timestep's noise level
    exact = torch.distributions.Normal(math.sqrt(ab0) * MU, (ab0 * S**2 + 1 - ab0).sqrt()).log_prob(x).sum(1)
    assert ll.kind.value == "exact" and "exact divergence" in ll.method
    assert (ll.values - exact).abs().max() < 1e-3  # measured 5e-5


def test_ode_likelihood_on_digits_is_a_labelled_dequantised_estimate(digits):
    model = DDPM(digits.info, DDPMConfig(**DDPM.test_options)).eval()
    ll = model.log_likelihood(digits.test.x[:4], method="ode", k=2)
    assert ll.kind.value == "estimate" and "Hutchinson divergence, 2 probes" in ll.method
    assert "dequantisation" in ll.method and torch.isfinite(ll.values).all()


def test_hybrid_loss_has_finite_gradients_on_discrete_data(digits):
    # rows with t >= 1 must not reach the discretised decoder's tails: 0 * inf in torch.where was NaN
    torch.manual_seed(0)
    options = dict(timesteps=50, schedule="cosine", channels=(8, 16), layers_per_block=1, variance="learned")
    model = DDPM(digits.info, DDPMConfig(**options))
    x = digits.train.x[:8]
    model.loss(x, t=torch.tensor([0, 1, 5, 10, 20, 30, 40, 49]))["loss"].backward()
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, bad


@pytest.mark.parametrize("sampler, steps", [("ddim", 4), ("dpm", 4), ("heun", 10)])
def test_cosine_deterministic_samplers_start_from_noise_not_from_a_half_noised_timestep(sampler, steps):
    """N(0, I) is a draw of q(x_t) only where ab(t) is about 0: at T-2 for DDIM, and where sigma is
    under EDM's 80 for Heun and DPM-Solver. Started lower (t = 749 for 4 steps, as before), the
    samples' mean fell short of the data's by sqrt(ab) of it: 0.40 and 0.31 against 0.5."""
    model = gaussian_model(schedule="cosine")
    ts = model.timesteps_for(model.sample_options(sampler=sampler, steps=steps))
    assert len(ts) == steps and int(ts[0]) == (998 if sampler == "ddim" else 990) and int(ts[-1]) == 0
    x = model.sample(N, generator=_gen(2), sampler=sampler, steps=steps)
    mean_z = (x.mean(0) - MU) / (S / math.sqrt(N))
    assert mean_z.abs().max() < 3, mean_z.tolist()
