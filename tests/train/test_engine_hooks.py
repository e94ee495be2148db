"""The engine's hooks for the families still to come, each shown with a small test double:

* several optimisers and several critic steps per step (WGAN-style) -> ``train_step`` + ``ctx.next_batch``
* an energy-based model with a replay buffer of MCMC samples -> a registered buffer, checkpointed
* a diffusion model sampled from its EMA weights -> ``ema_decay`` and ``load_run(weights=...)``
* a flow whose actnorm initialises from the first batch -> ``initialize(x)``, once per fresh run
* an RBM trained by contrastive divergence without autograd -> ``ctx.apply_gradients``
plus non-finite losses, gradient clipping and in-process resume equality.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from deepgen import registry
from deepgen.data import DataSpec, load_dataset
from deepgen.models.base import GenerativeModel
from deepgen.train import TrainConfig, Trainer, TrainingDiverged, load_run


@dataclass(frozen=True)
class Cfg:
    critic_steps: int = 3


@pytest.fixture(scope="module")
def moons():
    return load_dataset(DataSpec("moons", n_train=512))


def cfg(**kw):
    base = dict(steps=6, batch_size=32, progress=False, eval_every=0, log_every=1, ckpt_every=0)
    return TrainConfig(**{**base, **kw})


def params(m):
    return [p.detach().clone() for p in m.parameters()]


class Critic(GenerativeModel):
    """WGAN-style double: two optimisers, ``critic_steps`` critic updates per generator update."""

    family = "gan"
    Config = Cfg

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.g = nn.Linear(2, 2)
        self.d = nn.Linear(2, 1)
        self.batches_seen = 0

    def configure_optimizers(self, c):
        return {
            "d": torch.optim.SGD(self.d.parameters(), lr=0.01),
            "g": torch.optim.SGD(self.g.parameters(), lr=0.01),
        }

    def train_step(self, x, y, ctx):
        for i in range(self.config.critic_steps):
            if i:
                x, _ = ctx.next_batch()
            self.batches_seen += 1
            d_loss = self.d(self.g(torch.randn_like(x)).detach()).mean() - self.d(x).mean()
            ctx.step(d_loss, "d")
        g_loss = -self.d(self.g(torch.randn_like(x))).mean()
        ctx.step(g_loss, "g")
        return {"loss": d_loss.detach() + g_loss.detach()}

    def sample(self, n, *, generator=None):
        return self.g(torch.randn(n, 2, generator=generator))


def test_several_optimisers_and_critic_steps(moons, tmp_path):
    with registry.temporary("test-critic", Critic):
        m = Critic(moons.info)
        d0, g0 = m.d.weight.detach().clone(), m.g.weight.detach().clone()
        t = Trainer(m, moons, cfg(), tmp_path, plots=False, quiet=True)
        t.fit()
        assert m.batches_seen == 18 and t.batches_drawn == 18
        assert not torch.equal(d0, m.d.weight) and not torch.equal(g0, m.g.weight)
        ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
        assert set(ckpt["optimizers"]) == {"d", "g"} and ckpt["batches_drawn"] == 18


class ReplayEBM(GenerativeModel):
    """EBM double: persistent Langevin chains live in a registered buffer (so checkpoints hold them)."""

    family = "energy"

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.energy = nn.Sequential(nn.Linear(2, 16), nn.SiLU(), nn.Linear(16, 1))
        self.register_buffer("replay", torch.randn(64, 2))

    def langevin(self, x, steps=3, eps=0.05):
        for _ in range(steps):
            x = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(x).sum(), x)
            x = x - eps * g + (2 * eps) ** 0.5 * torch.randn_like(x)
        return x.detach()

    def loss(self, x, y=None):
        idx = torch.randint(0, len(self.replay), (len(x),))
        neg = self.langevin(self.replay[idx])
        self.replay[idx] = neg
        return {"loss": self.energy(x).mean() - self.energy(neg).mean()}

    def sample(self, n, *, generator=None):
        return self.langevin(torch.randn(n, 2, generator=generator))


def test_replay_buffer_is_checkpointed_and_resume_is_exact(moons, tmp_path):
    with registry.temporary("test-replay-ebm", ReplayEBM):
        torch.manual_seed(0)
        straight = ReplayEBM(moons.info)
        Trainer(straight, moons, cfg(steps=8), tmp_path / "a", plots=False, quiet=True).fit()
        torch.manual_seed(0)
        first = ReplayEBM(moons.info)
        Trainer(first, moons, cfg(steps=4), tmp_path / "b", plots=False, quiet=True).fit()
        torch.manual_seed(123)  # a different process state must not matter after resume
        second = ReplayEBM(moons.info)
        Trainer(second, moons, cfg(steps=8), tmp_path / "b", plots=False, quiet=True, resume=True).fit()
        for (k, a), b in zip(straight.state_dict().items(), second.state_dict().values()):
            assert torch.equal(a, b), k
        assert not torch.equal(second.replay, ReplayEBM(moons.info).replay)
        steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
        assert steps == list(range(1, 9))  # the log continues without duplicates


class Denoiser(GenerativeModel):
    """Diffusion double: trains a tiny network; sampling should use the EMA weights."""

    family = "diffusion"
    train_defaults = {"ema_decay": 0.9}

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.net = nn.Linear(2, 2)

    def loss(self, x, y=None):
        noise = torch.randn_like(x)
        return {"loss": (self.net(x + noise) - noise).pow(2).mean()}

    def sample(self, n, *, generator=None):
        return self.net(torch.randn(n, 2, generator=generator))


def test_ema_weights_are_used_for_sampling(moons, tmp_path):
    with registry.temporary("test-denoiser", Denoiser):
        m = Denoiser(moons.info)
        t = Trainer(m, moons, cfg(steps=20, ema_decay=0.9, lr=0.1), tmp_path, plots=False, quiet=True)
        t.fit()
        raw = load_run(tmp_path, weights="raw").model
        ema = load_run(tmp_path).model
        assert load_run(tmp_path).weights == "ema"
        assert not torch.equal(raw.net.weight, ema.net.weight)
        # after fit() the model holds the weights evaluation uses: the EMA
        assert torch.equal(ema.net.weight, m.net.weight) and not m.training
        ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
        assert torch.equal(ckpt["model"]["net.weight"], raw.net.weight)  # the raw weights are kept
        g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
        assert not torch.equal(raw.sample(5, generator=g1), ema.sample(5, generator=g2))


class ActNormFlow(GenerativeModel):
    """Flow double: an actnorm layer whose shift/scale come from the first batch."""

    family = "flow"

    def __init__(self, info, config=None):
        super().__init__(info, config)
        self.loc = nn.Parameter(torch.zeros(2))
        self.log_scale = nn.Parameter(torch.zeros(2))
        self.register_buffer("initialized", torch.tensor(0))

    @torch.no_grad()
    def initialize(self, x):
        self.initialized += 1
        self.loc.copy_(x.mean(0))
        self.log_scale.copy_(x.std(0).log())

    def loss(self, x, y=None):
        z = (x - self.loc) * torch.exp(-self.log_scale)
        return {"loss": (0.5 * z.pow(2) + self.log_scale).sum(1).mean()}

    def sample(self, n, *, generator=None):
        return self.loc + torch.exp(self.log_scale) * torch.randn(n, 2, generator=generator)


def test_data_dependent_init_runs_once_on_fresh_runs(moons, tmp_path):
    with registry.temporary("test-actnorm", ActNormFlow):
        m = ActNormFlow(moons.info)
        Trainer(m, moons, cfg(steps=2, lr=1e-9), tmp_path, plots=False, quiet=True).fit()
        assert int(m.initialized) == 1
        from deepgen.train.sampler import EpochSampler

        first = moons.train.x[EpochSampler.for_run(len(moons.train), 32, seed=0).batch(0)]
        assert torch.allclose(m.loc, first.mean(0), atol=1e-6)
        m2 = ActNormFlow(moons.info)
        Trainer(m2, moons, cfg(steps=4, lr=1e-9), tmp_path, plots=False, quiet=True, resume=True).fit()
        assert int(m2.initialized) == 1  # restored from the checkpoint, not re-initialised


class CDRBM(GenerativeModel):
    """RBM double trained by CD-1 without autograd: gradients written to .grad by hand."""

    family = "energy"

    def __init__(self, info, config=None):
        super().__init__(info, config)
        d = info.dim
        self.W = nn.Parameter(torch.zeros(d, 8))
        self.b = nn.Parameter(torch.zeros(d))
        self.c = nn.Parameter(torch.zeros(8))

    def train_step(self, x, y, ctx):
        with torch.no_grad():
            v0 = x.flatten(1)
            h0 = torch.sigmoid(v0 @ self.W + self.c)
            v1 = torch.bernoulli(torch.sigmoid(torch.bernoulli(h0) @ self.W.T + self.b))
            h1 = torch.sigmoid(v1 @ self.W + self.c)
            self.W.grad = -(v0.T @ h0 - v1.T @ h1) / len(x)
            self.b.grad = -(v0 - v1).mean(0)
            self.c.grad = -(h0 - h1).mean(0)
            ctx.apply_gradients("main")
        return {"loss": (v0 - v1).pow(2).mean()}

    def sample(self, n, *, generator=None):
        return torch.bernoulli(torch.sigmoid(self.b).expand(n, -1), generator=generator).view(n, *self.info.shape)


def test_gradients_without_autograd(binary_digits, tmp_path):
    with registry.temporary("test-cd-rbm", CDRBM):
        m = CDRBM(binary_digits.info)
        Trainer(m, binary_digits, cfg(steps=5, lr=0.05), tmp_path, plots=False, quiet=True).fit()
        assert m.W.abs().sum() > 0 and m.b.abs().sum() > 0


class Exploding(ActNormFlow):
    def loss(self, x, y=None):
        out = super().loss(x)
        if self.exploded_after is not None and self.calls >= self.exploded_after:
            out["loss"] = out["loss"] * float("nan")
        self.calls += 1
        return out

    calls = 0
    exploded_after = 7


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(moons, tmp_path):
    with registry.temporary("test-exploding", Exploding):
        m = Exploding(moons.info)
        t = Trainer(m, moons, cfg(steps=20, ckpt_every=5), tmp_path, plots=False, quiet=True)
        with pytest.raises(TrainingDiverged, match=r"loss became nan at step 8.*step 5\) is kept") as e:
            t.fit()
        assert "\n" not in str(e.value)
        ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
        assert ckpt["step"] == 5 and torch.isfinite(ckpt["model"]["loc"]).all()


def test_gradient_clipping(moons, tmp_path):
    class Big(ActNormFlow):
        def initialize(self, x):  # start from zeros so the step's size is visible
            pass

        def configure_optimizers(self, c):
            return {"main": torch.optim.SGD(self.parameters(), lr=1.0)}

        def loss(self, x, y=None):
            return {"loss": 1e6 * super().loss(x)["loss"]}

    with registry.temporary("test-big", Big):
        for clip, bound in ((0.01, 0.01 + 1e-6), (None, 1e3)):
            m = Big(moons.info)
            Trainer(m, moons, cfg(steps=1, grad_clip=clip), tmp_path / str(clip), plots=False, quiet=True).fit()
            step = torch.cat([p.detach().flatten() for p in m.parameters()]).norm()
            # one SGD step of lr 1 moves the parameters by exactly the (clipped) gradient norm
            assert (step <= bound) if clip else (step > bound)
