"""Run under torchrun by test_ddp.py: train one model and save this rank's parameters."""

import sys

import torch

from deepgen.data import DataSpec, load_dataset
from deepgen.train import TrainConfig, Trainer, build_model

name, out = sys.argv[1], sys.argv[2]
ds = load_dataset(DataSpec("moons", n_train=1000))
opts = {"vae": {"hidden": (16, 16), "latent_dim": 2}, "gan": {"hidden": (16, 16), "latent_dim": 2}}[name]
model = build_model(name, ds.info, opts, seed=0)
trainer = Trainer(
    model,
    ds,
    TrainConfig(steps=8, batch_size=16, progress=False, eval_every=0, threads=1),
    f"{out}/run",
    plots=False,
    quiet=True,
)
trainer.fit()
rank = trainer.dist.rank
torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{out}/rank{rank}.pt")
