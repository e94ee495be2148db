"""Run by test_ddp.py, under torchrun or plain python: train one model, save this rank's parameters.

    ddp_worker.py MODEL OUT [BATCH]

MODEL: vae, gan or vqvae (ranks must agree), or gmm / gmm-two-optimizers (deterministic models whose
2-process run must match a 1-process run with the same global batch: that checks the averaging),
unused (a parameter only rank 1 uses, through the manual all-reduce), or per-rank (a per-rank
buffer):

    ddp_worker.py per-rank OUT STEPS     # trains (or resumes) OUT/run to STEPS, saves each rank's buffer
    ddp_worker.py patience OUT           # early stopping decided on rank 0: every rank stops at its step
    ddp_worker.py fails OUT              # rank 0's evaluation raises: the job must end, not hang
    ddp_worker.py time-limit OUT         # clocks that differ by rank: the ranks agree on lr and stop
"""

import sys
from pathlib import Path

import torch
from torch import nn

from deepgen.data import DataSpec, load_dataset
from deepgen.models.baselines import GaussianMixture
from deepgen.train import TrainConfig, Trainer, build_model


class SGDGMM(GaussianMixture):
    """Plain SGD: unlike Adam it is not invariant to the gradient's scale, so a wrong average shows."""

    def configure_optimizers(self, cfg):
        return {"main": torch.optim.SGD(self.parameters(), lr=cfg.lr)}


class TwoOptimizerGMM(GaussianMixture):
    """Means and the rest stepped by two optimisers in a custom train_step (the non-DDP sync path)."""

    def configure_optimizers(self, cfg):
        rest = [p for n, p in self.named_parameters() if n != "means"]
        return {"means": torch.optim.SGD([self.means], lr=cfg.lr), "rest": torch.optim.SGD(rest, lr=cfg.lr)}

    def train_step(self, x, y, ctx):
        ctx.step(self.loss(x)["loss"], "means")
        out = self.loss(x)
        ctx.step(out["loss"], "rest")
        return out


class UnusedOnRank0(SGDGMM):
    """A scalar ``extra`` that only rank 1's loss uses (``extra ** 2``); stepped by the manual all-reduce."""

    def __init__(self, info, config):
        super().__init__(info, config)
        self.extra = nn.Parameter(torch.tensor(1.0))

    def loss(self, x, y=None):
        out = super().loss(x)
        if torch.distributed.is_initialized() and torch.distributed.get_rank() == 1:
            out["loss"] = out["loss"] + self.extra**2
        return out

    def train_step(self, x, y, ctx):  # its own train_step: the non-DDP path
        out = self.loss(x)
        ctx.step(out["loss"])
        return out


class PerRankChain(SGDGMM):
    """Persistent per-rank state (like an EBM's chains): each rank's buffer follows its own batches."""

    per_rank_buffers = ("chain",)

    def __init__(self, info, config):
        super().__init__(info, config)
        self.register_buffer("chain", torch.zeros(4, 2))

    def initialize(self, x):  # differs by rank: the first batches differ
        self.chain.copy_(x[:4])

    def loss(self, x, y=None):
        with torch.no_grad():  # a step of a "chain" that depends on this rank's data and RNG
            self.chain.mul_(0.5).add_(0.5 * x[:4] + 0.01 * torch.randn_like(self.chain))
        return super().loss(x)


def gmm(cls, ds):
    torch.manual_seed(0)
    model = cls(ds.info, GaussianMixture.Config(3))
    model.initialize(ds.train.x[:256])  # the same on every rank, so fit() needs no data-dependent init
    return model


name, out = sys.argv[1], sys.argv[2]
Path(out).mkdir(parents=True, exist_ok=True)
batch = int(sys.argv[3]) if len(sys.argv) > 3 and name != "per-rank" else 16
ds = load_dataset(DataSpec("moons", n_train=1000))
cfg = TrainConfig(steps=8, batch_size=batch, progress=False, eval_every=0, threads=1, lr=0.05)
if name == "per-rank":  # one run per process launch: a process group is joined once
    steps = int(sys.argv[3])
    cfg = TrainConfig(**{**cfg.__dict__, "batch_size": 16, "steps": steps})
    t = Trainer(gmm(PerRankChain, ds), ds, cfg, f"{out}/run", plots=False, quiet=True, resume=True)
    t.fit()
    torch.save(t.model.chain.clone(), f"{out}/chain{t.dist.rank}-{steps}.pt")
    sys.exit(0)
if name == "fails":
    model = build_model("vae", ds.info, {"hidden": (16, 16), "latent_dim": 2}, seed=0)

    def broken(x, y=None):
        raise RuntimeError("evaluation failed on rank 0")

    model.evaluate = broken
    cfg = TrainConfig(**{**cfg.__dict__, "steps": 100, "eval_every": 2, "eval_examples": 64})
    Trainer(model, ds, cfg, f"{out}/run", plots=False, quiet=True).fit()
if name == "patience":  # validation NLLs 3, 4 at steps 2, 4: patience 1 stops at step 4 of 100
    model = build_model("vae", ds.info, {"hidden": (16, 16), "latent_dim": 2}, seed=0)
    values = iter([3.0, 4.0])
    model.evaluate = lambda x, y=None: {"nll": next(values)}  # called on rank 0 only
    cfg = TrainConfig(**{**cfg.__dict__, "steps": 100, "eval_every": 2, "eval_examples": 64, "patience": 1})
    t = Trainer(model, ds, cfg, f"{out}/run", plots=False, quiet=True)
    summary = t.fit()
    torch.save({"step": t.step, "stopped_early": summary["stopped_early"]}, f"{out}/rank{t.dist.rank}.pt")
    sys.exit(0)
if name == "time-limit":  # rank r's scripted clock says 10 + r seconds per step; the limit is 105 s
    import os

    from deepgen.train import engine

    model = build_model("vae", ds.info, {"hidden": (16, 16), "latent_dim": 2}, seed=0)
    cfg = TrainConfig(**{**cfg.__dict__, "steps": 100, "lr_schedule": "cosine", "time_limit": 105})
    t = Trainer(model, ds, cfg, f"{out}/run", plots=False, quiet=True)
    engine.clock = lambda: t.step * (10.0 + int(os.environ["RANK"]))
    t.fit()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save({"step": t.step, "reached": t.time_limit_reached, "state": state}, f"{out}/rank{t.dist.rank}.pt")
    sys.exit(0)
if name == "unused":
    model = gmm(UnusedOnRank0, ds)
    model.initialize = lambda x: None
elif name.startswith("gmm"):
    torch.manual_seed(0)
    model = (TwoOptimizerGMM if name == "gmm-two-optimizers" else SGDGMM)(ds.info, GaussianMixture.Config(3))
    model.initialize(ds.train.x[:256])  # the same on every rank, so fit() needs no data-dependent init
    model.initialize = lambda x: None
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{out}/init.pt")
else:
    opts = {
        "vae": {"hidden": (16, 16), "latent_dim": 2},
        "gan": {"hidden": (16, 16), "latent_dim": 2},
        # an EMA codebook and dead-code restarts: buffers that each rank updates from its own batch
        "vqvae": {"hidden": (16, 16), "num_codes": 8, "code_dim": 2, "restart_after": 2},
    }[name]
    model = build_model(name, ds.info, opts, seed=0)
trainer = Trainer(model, ds, cfg, f"{out}/run", plots=False, quiet=True)
trainer.fit()
torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{out}/rank{trainer.dist.rank}.pt")
