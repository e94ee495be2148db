"""Run by test_ddp.py, under torchrun or plain python: train one model, save this rank's parameters.

    ddp_worker.py MODEL OUT [BATCH]

MODEL: vae or gan (ranks must agree), or gmm / gmm-two-optimizers (deterministic models whose
2-process run must match a 1-process run with the same global batch: that checks the averaging).
"""

import sys
from pathlib import Path

import torch

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


name, out = sys.argv[1], sys.argv[2]
Path(out).mkdir(parents=True, exist_ok=True)
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 16
ds = load_dataset(DataSpec("moons", n_train=1000))
if name.startswith("gmm"):
    torch.manual_seed(0)
    model = (TwoOptimizerGMM if name == "gmm-two-optimizers" else SGDGMM)(ds.info, GaussianMixture.Config(3))
    model.initialize(ds.train.x[:256])  # the same on every rank, so fit() needs no data-dependent init
    model.initialize = lambda x: None
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{out}/init.pt")
else:
    opts = {"vae": {"hidden": (16, 16), "latent_dim": 2}, "gan": {"hidden": (16, 16), "latent_dim": 2}}[name]
    model = build_model(name, ds.info, opts, seed=0)
cfg = TrainConfig(steps=8, batch_size=batch, progress=False, eval_every=0, threads=1, lr=0.05)
trainer = Trainer(model, ds, cfg, f"{out}/run", plots=False, quiet=True)
trainer.fit()
torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{out}/rank{trainer.dist.rank}.pt")
