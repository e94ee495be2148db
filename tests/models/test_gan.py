"""GANs: sampling options, arch choice, no density; losses and stabilisers; cgan, infogan, unrolled, aae."""

from __future__ import annotations

import pytest
import torch

from deepgen.data import DataInfo
from deepgen.errors import ConfigError, DataError, NoDensityError
from deepgen.models.gan import GAN, GANConfig

DIGITS = DataInfo("digits", (1, 8, 8), 17)


def _gan(info=DIGITS, **kw):
    torch.manual_seed(0)
    return GAN(info, GANConfig(**{**GAN.test_options, **kw}))


def test_truncated_z_lies_in_the_interval_and_keeps_the_normal_shape():
    model = _gan()
    opts = GAN.sample_options(truncation="1.5")
    z = model._z(20_000, torch.device("cpu"), torch.Generator().manual_seed(0), opts)
    assert z.abs().max() <= 1.5 and z.abs().max() > 1.45
    # the variance of N(0, 1) truncated to [-t, t]: 1 - 2 t phi(t) / (2 Phi(t) - 1) = 0.5507 at t = 1.5
    assert z.var().item() == pytest.approx(0.5507, abs=0.02)
    hot = model._z(20_000, torch.device("cpu"), torch.Generator().manual_seed(0), GAN.sample_options(temperature=2))
    assert hot.std().item() == pytest.approx(2.0, abs=0.05)


def test_samples_are_seeded_and_on_the_lattice():
    model = _gan().eval()
    a = model.sample(5, generator=torch.Generator().manual_seed(3), truncation=0.5)
    b = model.sample(5, generator=torch.Generator().manual_seed(3), truncation=0.5)
    c = model.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, c)
    k = a * 16
    assert torch.equal(k, k.round())
    assert GAN.describe_sampling(GAN.sample_options(truncation=0.5)) == "truncation=0.5"


def test_arch_and_no_density():
    assert _gan().arch == "dcgan" and _gan(arch="mlp").arch == "mlp"
    with pytest.raises(DataError, match="arch=dcgan needs image data"):
        _gan(DataInfo("moons", (2,)), arch="dcgan")
    with pytest.raises(NoDensityError, match="sampler, not a density"):
        _gan().log_prob(torch.zeros(2, 1, 8, 8))


def test_fc_puts_a_normalised_hidden_layer_in_both_dcgan_networks():
    model = _gan(fc=24)
    g_fc = model.generator[0]  # z -> FC(24) BN ReLU, then the decoder's own FC with batch norm
    assert isinstance(g_fc[0], torch.nn.Linear) and g_fc[0].out_features == 24
    assert isinstance(g_fc[1], torch.nn.BatchNorm1d) and isinstance(model.generator[1].fc[1], torch.nn.BatchNorm1d)
    d = model.discriminator
    assert d.head.in_features == 24 and any(isinstance(m, torch.nn.BatchNorm1d) for m in d.body)
    x = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 1, 8, 8) and d(x).shape == (4,)
    # WGAN-GP's critic has no batch norm (its penalty is per example), the FC layer included
    critic = _gan(fc=24, loss="wgan-gp").discriminator
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in critic.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in _gan(fc=24, arch="mlp").modules())  # MLPs: `hidden`
    plain = _gan().generator  # fc=0: the plain DCGAN generator, z -> FC ReLU -> 16 x 2 x 2, no batch norm there
    assert plain.fc[0].in_features == 4 and plain.fc[0].out_features == 16 * 2 * 2 and len(plain.fc) == 2


# -- losses and stabilisers (issue 13) ------------------------------------------------------------------
import copy  # noqa: E402
import math  # noqa: E402

from deepgen.data import DataSpec, load_dataset  # noqa: E402
from deepgen.models.gan import AAE, CGAN, AAEConfig, CGANConfig, InfoGAN, InfoGANConfig  # noqa: E402
from deepgen.models.gan import losses as L  # noqa: E402
from deepgen.models.gan.augment import diff_augment  # noqa: E402
from deepgen.train import TrainConfig, Trainer  # noqa: E402

TOY = DataInfo("8gaussians", (2,))


@pytest.mark.parametrize("kind", L.LOSSES)
def test_each_loss_pushes_d_up_on_reals_down_on_fakes_and_g_up_on_fakes(kind):
    d_real = torch.tensor([0.3, -0.2, 0.1], requires_grad=True)
    d_fake = torch.tensor([0.1, 0.4, 0.2], requires_grad=True)  # (least squares targets reals at 1, fakes at 0)
    gr, gf = torch.autograd.grad(L.discriminator_loss(kind, d_real, d_fake), (d_real, d_fake))
    assert (gr < 0).all() and (gf > 0).all()  # descending L_D raises D on reals, lowers it on fakes
    (gg,) = torch.autograd.grad(L.generator_loss(kind, d_fake), d_fake)
    assert (gg < 0).all()  # descending L_G raises D on fakes
    # a generator sample below a fixed critic D(x) = 2x moves up the critic's slope
    x = torch.tensor([[-0.5]], requires_grad=True)
    (gx,) = torch.autograd.grad(L.generator_loss(kind, 2 * x[:, 0]), x)
    assert gx.item() < 0


def test_minimax_generator_loss_saturates_where_the_nonsaturating_one_does_not():
    d_fake = torch.tensor([-8.0], requires_grad=True)  # D confidently rejects the fake
    (g_mm,) = torch.autograd.grad(L.generator_loss("minimax", d_fake), d_fake)
    (g_ns,) = torch.autograd.grad(L.generator_loss("nonsaturating", d_fake), d_fake)
    assert abs(g_mm.item()) < 1e-3 < 0.99 < abs(g_ns.item())
    # the loss values: log(1 - sigmoid(d)) and -log sigmoid(d)
    assert L.generator_loss("minimax", d_fake).item() == pytest.approx(
        math.log(1 - torch.sigmoid(d_fake).item()), rel=1e-5
    )


def test_gradient_penalty_is_taken_on_interpolates_between_real_and_fake():
    real, fake = torch.zeros(64, 3), torch.ones(64, 3)
    seen = []

    def critic(x):
        seen.append(x.detach().clone())
        return x @ torch.tensor([3.0, 0.0, 4.0])  # ||grad|| = 5 everywhere

    gp = L.gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx(16.0)  # (5 - 1)^2
    (x_hat,) = seen
    e = x_hat[:, 0]
    assert torch.allclose(x_hat, e[:, None].expand(-1, 3))  # on the segment from real (0) to fake (1)
    assert 0 < e.min() and e.max() < 1 and e.std() > 0.1  # a fresh e per example
    # R1 on reals: E ||grad||^2 = 25
    assert L.r1_penalty(critic, real).item() == pytest.approx(25.0)


def test_spectral_norm_keeps_each_discriminator_layer_near_unit_gain():
    torch.manual_seed(0)
    model = GAN(TOY, GANConfig(hidden=(64, 64), spectral_norm=True))
    x = torch.randn(256, 2)
    for _ in range(30):  # one power iteration per forward pass in training mode
        model.discriminator(x)
    model.eval()
    linears = [m for m in model.discriminator.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3
    for lin in linears:
        assert torch.linalg.matrix_norm(lin.weight, ord=2).item() == pytest.approx(1.0, abs=0.02)
    # hence the whole discriminator is (about) 1-Lipschitz: leaky ReLU has gain <= 1
    a, b = torch.randn(500, 2), torch.randn(500, 2)
    with torch.no_grad():
        ratio = (model.discriminator(a) - model.discriminator(b)).abs() / (a - b).norm(dim=1)
    assert ratio.max().item() <= 1.05


def test_a_packed_discriminator_sees_a_collapse_that_a_per_example_one_cannot():
    """PacGAN (Lin et al., 2018): fakes that hop between the two modes batch by batch have the real
    marginal (a per-example D is at chance: loss log 4), but every pack of them sits on one mode."""
    from deepgen.models.gan import losses as L

    g = torch.Generator().manual_seed(0)
    modes = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])

    def batch(collapsed):
        idx = torch.randint(0, 2, (1,) if collapsed else (128,), generator=g).expand(128)
        return modes[idx] + 0.05 * torch.randn(128, 2, generator=g)

    final = {}
    for pack in (1, 4):
        torch.manual_seed(0)
        d = GAN(TOY, GANConfig(hidden=(64, 64), pack=pack)).discriminator
        opt = torch.optim.Adam(d.parameters(), lr=1e-3)
        losses = []
        for _ in range(300):
            loss = L.discriminator_loss("nonsaturating", d(batch(False)), d(batch(True)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        final[pack] = sum(losses[-50:]) / 50
        assert d(torch.randn(10, 2)).shape == (10 // pack,)  # one score per pack; a remainder is dropped
    assert final[1] > 1.3  # log 4 = 1.386: chance (measured 1.390)
    assert final[4] < 0.7  # packs of 4 give the collapse away (measured 0.400)
    from deepgen.models.gan import CGAN, CGANConfig

    with pytest.raises(ConfigError, match="pack"):
        CGAN(DataInfo("digits", (1, 8, 8), 17, 10), CGANConfig(**{**GAN.test_options, "pack": 2}))


@pytest.mark.parametrize("policy", [("color",), ("translation",), ("cutout",), ("color", "translation", "cutout")])
def test_diffaugment_is_differentiable_seeded_and_moves_channels_alike(policy):
    x = torch.rand(8, 3, 8, 8)
    x[:, 1] = x[:, 0]
    x[:, 2] = x[:, 0]
    x.requires_grad_(True)
    a = diff_augment(x, policy, torch.Generator().manual_seed(0))
    b = diff_augment(x, policy, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, diff_augment(x, policy, torch.Generator().manual_seed(1)))
    (g,) = torch.autograd.grad(a.sum(), x)
    assert g.abs().sum() > 0  # gradients reach the input (the generator, for fakes)
    if "color" not in policy:  # geometric transforms move every channel of an image alike
        assert torch.equal(a[:, 0], a[:, 1]) and torch.equal(a[:, 0], a[:, 2])


def test_translation_shifts_whole_pixels_and_cutout_zeroes_a_half_side_square():
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(200, 1, 1, 1)
    t = diff_augment(x, ("translation",), torch.Generator().manual_seed(0))
    for img in t:  # every output pixel is a zero (padding) or an input pixel shifted by at most 1
        nz = img[0] != 0
        vals = img[0][nz].long()
        rows, cols = nz.nonzero(as_tuple=True)
        assert ((vals // 8 - rows).abs() <= 1).all() and ((vals % 8 - cols).abs() <= 1).all()
        shift = (vals // 8 - rows, vals % 8 - cols)
        assert len(set(shift[0].tolist())) == 1 and len(set(shift[1].tolist())) == 1  # one shift per image
    c = diff_augment(torch.ones(200, 1, 8, 8), ("cutout",), torch.Generator().manual_seed(0))
    zeros = (c == 0).sum((1, 2, 3))
    assert zeros.max() == 16 and zeros.min() >= 4  # a 4x4 square, clipped at the borders


def test_unrolled_discriminator_weights_follow_adam_exactly():
    """The differentiable unroll reproduces what torch's Adam would do to D, step by step."""
    torch.manual_seed(0)
    model = GAN(TOY, GANConfig(hidden=(16, 16), unroll=3))
    cfg = TrainConfig(lr=1e-2, betas=(0.5, 0.999))
    opts = model.configure_optimizers(cfg)
    x, fake = torch.randn(32, 2), torch.randn(32, 2)
    loss, _, _ = model.discriminator_loss(x, fake)  # one real step, so Adam has moments
    opts["disc"].zero_grad()
    loss.backward()
    opts["disc"].step()

    class Ctx:
        optimizers = opts

    unrolled = model._unrolled_params(x, None, fake, Ctx)
    twin = copy.deepcopy(model)
    opt = torch.optim.Adam(twin.discriminator.parameters(), lr=1e-2, betas=(0.5, 0.999))
    opt.load_state_dict(opts["disc"].state_dict())
    for _ in range(3):
        opt.zero_grad()
        twin.discriminator_loss(x, fake)[0].backward()
        opt.step()
    for name, p in twin.discriminator.named_parameters():
        assert torch.allclose(unrolled[name], p, atol=1e-6), name


def test_unrolling_changes_the_generator_gradient():
    torch.manual_seed(0)
    plain = GAN(TOY, GANConfig(hidden=(16, 16)))
    unrolled = GAN(TOY, GANConfig(hidden=(16, 16), unroll=2))
    unrolled.load_state_dict(plain.state_dict())
    opts = unrolled.configure_optimizers(TrainConfig(lr=0.05))

    class Ctx:
        optimizers = opts

    x, z = torch.randn(64, 2), torch.randn(64, GANConfig().latent_dim)
    grads = []
    for m in (plain, unrolled):
        fake = m.generate(z)
        d = (
            torch.func.functional_call(m.discriminator, m._unrolled_params(x, None, fake, Ctx), (fake,))
            if m.config.unroll
            else m.discriminator(fake)
        )
        g = torch.autograd.grad(L.generator_loss("nonsaturating", d), list(m.generator.parameters()))
        grads.append(torch.cat([t.flatten() for t in g]))
    assert not torch.allclose(grads[0], grads[1], atol=1e-6)


# -- conditional GAN, InfoGAN, AAE ---------------------------------------------------------------------
@pytest.mark.parametrize("cond", ["concat", "projection"])
def test_cgan_label_changes_the_sample_and_the_score(cond):
    info = DataInfo("digits", (1, 8, 8), 17, num_classes=10)
    torch.manual_seed(0)
    m = CGAN(info, CGANConfig(**{**CGAN.test_options, "cond": cond})).eval()
    z = torch.randn(4, m.config.latent_dim)
    a = m.generate(z, torch.tensor([0, 0, 0, 0]))
    b = m.generate(z, torch.tensor([1, 1, 1, 1]))
    assert not torch.allclose(a, b)
    x = torch.rand(4, 1, 8, 8)
    if cond == "projection":  # the embedding starts at zero (labels enter as training moves it)
        assert torch.equal(m.discriminator(x, torch.tensor([0] * 4)), m.discriminator(x, torch.tensor([3] * 4)))
        torch.nn.init.normal_(m.discriminator.embed.weight, std=0.1)
    assert not torch.allclose(m.discriminator(x, torch.tensor([0] * 4)), m.discriminator(x, torch.tensor([3] * 4)))
    s = m.sample(3, y=torch.tensor([2, 2, 2]), generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 1, 8, 8)


def _fit(model, name, steps, tmp_path, lr=1e-3, batch=128):
    ds = load_dataset(DataSpec(name, n_train=4000))
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=lr, betas=(0.5, 0.999), seed=0, progress=False,
                      eval_every=0, log_every=steps, ckpt_every=0, threads=1)  # fmt: skip
    Trainer(model, ds, cfg, tmp_path, plots=False, quiet=True).fit()
    return model.eval()


def test_infogan_q_recovers_the_categorical_code_after_short_training(tmp_path):
    torch.manual_seed(0)
    m = InfoGAN(TOY, InfoGANConfig(latent_dim=4, hidden=(64, 64), categorical=4, continuous=0))
    _fit(m, "8gaussians", 400, tmp_path)
    hits = []
    for k in range(4):
        x = m.sample(200, generator=torch.Generator().manual_seed(k), category=k)
        hits.append((m.predict_code(x) == k).float().mean().item())
    assert min(hits) > 0.9, hits
    grid = m.traversal("categorical", columns=5)
    assert grid.shape == (4 * 5, 2)


def test_infogan_sampling_options_fix_the_code():
    torch.manual_seed(0)
    m = InfoGAN(TOY, InfoGANConfig(**InfoGAN.test_options)).eval()
    code = m._code(6, torch.device("cpu"), None, InfoGAN.sample_options(category=2, continuous="0.5"))
    assert torch.equal(code[:, :3].argmax(1), torch.full((6,), 2)) and torch.all(code[:, 3] == 0.5)
    with pytest.raises(Exception, match="category must be in"):
        m.sample(2, category=7)
    assert m.traversal("continuous:0", columns=2, steps=5).shape == (10, 2)


def test_aae_aggregated_posterior_moves_to_the_prior(tmp_path):
    torch.manual_seed(0)
    ds = load_dataset(DataSpec("moons", n_train=4000))
    m = AAE(ds.info, AAEConfig(latent_dim=2, hidden=(64, 64), d_hidden=(64, 64)))
    with torch.no_grad():
        before = m.encode(ds.train.x[:2000])
    _fit(m, "moons", 600, tmp_path)
    with torch.no_grad():
        z = m.encode(ds.train.x[:2000])
    # the energy distance to N(0, I) samples (0 for equal laws) falls several-fold with training
    prior = torch.randn(2000, 2, generator=torch.Generator().manual_seed(1))

    def energy(a, b):
        return (2 * torch.cdist(a, b).mean() - torch.cdist(a, a).mean() - torch.cdist(b, b).mean()).item()

    assert energy(z, prior) < energy(before, prior) / 4  # measured: 0.576 -> 0.029
    assert z.mean(0).abs().max() < 0.2
    s = m.sample(500, generator=torch.Generator().manual_seed(0))
    assert s.shape == (500, 2) and torch.isfinite(s).all()


# -- CycleGAN --------------------------------------------------------------------------------------------
from deepgen.models.base import UnsupportedError  # noqa: E402
from deepgen.models.gan.cyclegan import CycleGAN, CycleGANConfig  # noqa: E402


class _Map(torch.nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


def test_cyclegan_cycle_loss_is_zero_for_an_inverse_pair_and_identity_loss_measures_change():
    ds = load_dataset("domains:digits-inverted")
    m = CycleGAN(ds.info, CycleGANConfig(**CycleGAN.test_options))
    a, b = ds.train.x[:16], ds.draw_b(16, torch.Generator().manual_seed(0))
    invert = _Map(lambda x: torch.logit(1 - x))  # sigmoid(logit(1 - x)) = 1 - x: B is A with levels inverted
    m.gen_ab, m.gen_ba = invert, _Map(lambda x: torch.logit(1 - x))
    assert m.cycle_loss(a, b).item() == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(m.translate(a), 1 - a)
    # the inverse pair changes every pixel of an in-domain input: identity loss |1 - 2x| > 0
    assert m.identity_loss(a, b).item() == pytest.approx(
        ((1 - 2 * b).abs().mean() + (1 - 2 * a).abs().mean()).item(), rel=1e-5
    )
    ident = _Map(lambda x: torch.logit(x))
    m.gen_ab, m.gen_ba = ident, ident
    assert m.cycle_loss(a, b).item() == pytest.approx(0.0, abs=1e-6) and m.identity_loss(a, b).item() == pytest.approx(
        0.0, abs=1e-6
    )


def test_image_pool_fills_then_swaps_about_half_for_older_fakes():
    from deepgen.models.gan.cyclegan import ImagePool

    torch.manual_seed(0)
    pool = ImagePool(6, (1, 2, 2))
    first = torch.arange(6.0)[:, None, None, None].expand(6, 1, 2, 2)
    assert torch.equal(pool.query(first), first) and int(pool.count) == 6  # filling: returned unchanged
    swapped = 0
    for r in range(1, 201):
        new = torch.full((4, 1, 2, 2), 100.0 * r)
        stored = pool.images.clone()
        out = pool.query(new)
        kept = (out == new).all((1, 2, 3))
        swapped += int((~kept).sum())
        for img in out[~kept]:  # a swapped-in fake is one the pool held before this call
            assert any(torch.equal(img, s) for s in stored)
        assert int(pool.count) == 6
    assert abs(swapped / 800 - 0.5) < 0.06, swapped
    # the pool is part of the model's state: a resumed run continues with the same history
    m = CycleGAN(load_dataset("domains:digits-inverted").info, CycleGANConfig(**{**CycleGAN.test_options, "pool": 5}))
    assert {"pool_a.images", "pool_b.images", "pool_a.count"} <= set(m.state_dict())


def test_cyclegan_translates_both_ways_and_refuses_to_sample():
    ds = load_dataset("domains:digits-inverted")
    torch.manual_seed(0)
    m = CycleGAN(ds.info, CycleGANConfig(**CycleGAN.test_options)).eval()
    x = ds.test.x[:5]
    for direction in ("a2b", "b2a"):
        t = m.translate(x, direction=direction)
        assert t.shape == x.shape and torch.equal(t * 16, (t * 16).round())  # on the 17-level lattice
    with pytest.raises(UnsupportedError, match="does not sample from noise"):
        m.sample(3)
    with pytest.raises(DataError, match="one shape"):
        from dataclasses import replace

        CycleGAN(replace(ds.info, domain_b=DataInfo("b", (1, 4, 4), 17)))


def test_train_defaults_depend_on_the_networks():
    assert GAN.train_defaults_for(TOY)["lr"] == 1e-3  # MLPs on vectors (8 modes within 2,000 steps)
    assert GAN.train_defaults_for(DIGITS)["lr"] == 2e-4  # DCGAN on images
    assert GAN.train_defaults_for(DIGITS, {"arch": "mlp"})["lr"] == 1e-3
    assert GAN.train_defaults_for(TOY)["betas"] == (0.5, 0.999)


def test_acgan_classifier_head_learns_the_labels_and_steers_the_generator(tmp_path):
    """cond=ac: D never sees y; its auxiliary head learns to classify reals, and G's fakes of class k
    are classified as k by that head (the term L_C that AC-GAN adds to both losses)."""
    ds = load_dataset(DataSpec("digits"))
    info = ds.info
    torch.manual_seed(0)
    m = CGAN(info, CGANConfig(**{**CGAN.test_options, "cond": "ac"}))
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(m.discriminator(x, torch.tensor([0] * 4)), m.discriminator(x, torch.tensor([3] * 4)))
    cfg = TrainConfig(steps=300, batch_size=64, lr=1e-3, betas=(0.5, 0.999), seed=0, progress=False,
                      eval_every=0, log_every=300, ckpt_every=0, threads=1)  # fmt: skip
    Trainer(m, ds, cfg, tmp_path, plots=False, quiet=True).fit()
    m.eval()
    xt, yt = ds.test.x, ds.test.y
    _, q = m.discriminator.features(xt, None)
    real_acc = (q.argmax(1) == yt).float().mean().item()
    y = torch.arange(10).repeat(50)
    fake = m.sample(len(y), y=y, generator=torch.Generator().manual_seed(0))
    fake_acc = (m.discriminator.features(fake, None)[1].argmax(1) == y).float().mean().item()
    assert real_acc > 0.6 and fake_acc > 0.8, (real_acc, fake_acc)
    with pytest.raises(ConfigError, match="unroll"):
        CGAN(info, CGANConfig(**{**CGAN.test_options, "cond": "ac", "unroll": 2}))


@pytest.mark.parametrize("on_fakes", [True, False])
def test_acgan_classifier_term_uses_fakes_only_when_asked(on_fakes):
    info = DataInfo("digits", (1, 8, 8), 17, num_classes=10)
    m = CGAN(info, CGANConfig(**{**CGAN.test_options, "cond": "ac", "ac_on_fakes": on_fakes, "ac_weight": 2.0}))
    qr, qf, y = torch.randn(6, 10), torch.randn(6, 10), torch.arange(6)
    ce = torch.nn.functional.cross_entropy
    want = 2.0 * (ce(qr, y) + (ce(qf, y) if on_fakes else 0))
    assert torch.allclose(m.aux_discriminator_loss(qr, qf, y, None), want)
    with pytest.raises(DataError, match="labelled data"):
        CGAN(DataInfo("digits", (1, 8, 8), 17), CGANConfig(**{**CGAN.test_options, "cond": "ac"}))
