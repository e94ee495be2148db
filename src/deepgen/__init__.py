"""deepgen: deep generative modelling, every family behind one interface.

Quick start::

    from deepgen.data import load_dataset
    from deepgen.train import Trainer, TrainConfig, build_model

    data = load_dataset("digits")
    model = build_model("vae", data.info, seed=0)
    Trainer(model, data, TrainConfig(steps=2000), "runs/vae-digits").fit()
    x = model.sample(16)                          # (16, 1, 8, 8) on the 17-level lattice
    ll = model.log_likelihood(data.test.x, k=100) # labelled: ll.kind == "estimate"
"""

__version__ = "0.1.0"
