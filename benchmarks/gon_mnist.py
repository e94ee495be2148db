"""GON and variational GON on MNIST against an autoencoder with the same implicit decoder (issue 14).

Four networks train through deepgen's ``Trainer`` on MNIST (256 grey levels, discretised-logistic
decoder chosen by the data) with the same steps, batch and learning rate:

* ``gon``: the Gradient Origin Network (latent = -grad at the origin), SIREN decoder of ``--hidden``;
* ``ae``: the autoencoder baseline, the *same* decoder plus an MLP encoder (``gon -o encoder=mlp``)
  of ``--encoder-hidden`` units, so it has more parameters (about 6.5x at the defaults);
* ``ae-narrow``: the same with an encoder of ``--narrow-encoder`` (16) units, the nearest an
  autoencoder with this decoder gets to the GON's parameter count (the encoder's first layer alone
  has 784 x width weights);
* ``gon-matched`` (not run by default: hours on a CPU): a GON whose decoder is widened until its
  parameter count matches ``ae``'s;
* ``vgon``: the variational GON, whose ELBO on the test images is reported in bits/dim (a bound).

Reported per model on ``--n-test`` test images: the reconstruction negative log-likelihood (nats per
image) and the mean squared error of the decoder's mean (pixels in [0, 1]); for ``vgon`` the
reconstruction uses the posterior mean. Samples are written at 28 x 28 and at 56 x 56 (the implicit
decoder queried on a finer grid). ``OUT.json`` is rewritten after every model.

    OMP_NUM_THREADS=1 python benchmarks/gon_mnist.py --data-dir ../shared/data --out runs/implicit/gon
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from deepgen.data import DataSpec, load_dataset
from deepgen.models.implicit import GON, VGON, GONConfig, VGONConfig
from deepgen.plots import save_image_grid
from deepgen.train import TrainConfig, Trainer


def params(m):
    return sum(p.numel() for p in m.parameters())


@torch.no_grad()
def reconstruction(model, x, batch=100):
    """(NLL nats per image, MSE of the decoder mean) over ``x``; VGON decodes its posterior mean."""
    nll, mse = [], []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        with torch.enable_grad():  # the GON's latent is a gradient
            z = model.posterior(xb)[0] if isinstance(model, VGON) else model.latent(xb)
        params_ = model.decoder(z.detach())
        nll.append(-model.likelihood.log_prob(params_, xb))
        mse.append((model.likelihood.mean(params_) - xb).pow(2).flatten(1).mean(1))
    return torch.cat(nll).mean().item(), torch.cat(mse).mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=os.environ.get("DEEPGEN_DATA", "../shared/data"))
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--latent-dim", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--w0", type=float, default=30.0)
    ap.add_argument("--encoder-hidden", type=int, default=256)
    ap.add_argument("--narrow-encoder", type=int, default=16)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--models", default="gon,ae,vgon,ae-narrow")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs/implicit/gon")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(DataSpec("mnist", data_dir=args.data_dir))
    x_test = ds.test.x[: args.n_test]
    common = dict(latent_dim=args.latent_dim, layers=args.layers, w0=args.w0)
    ae_cfg = GONConfig(hidden=args.hidden, encoder="mlp", encoder_hidden=args.encoder_hidden, **common)

    def matched_hidden():  # the GON decoder width whose parameter count is nearest the autoencoder's
        budget = params(GON(ds.info, ae_cfg))
        width = lambda h: abs(params(GON(ds.info, GONConfig(hidden=h, **common))) - budget)  # noqa: E731
        return min(range(args.hidden, 8 * args.hidden), key=width)

    builders = {
        "gon": lambda: GON(ds.info, GONConfig(hidden=args.hidden, **common)),
        "ae": lambda: GON(ds.info, ae_cfg),
        "ae-narrow": lambda: GON(ds.info, replace(ae_cfg, encoder_hidden=args.narrow_encoder)),
        "gon-matched": lambda: GON(ds.info, GONConfig(hidden=matched_hidden(), **common)),
        "vgon": lambda: VGON(ds.info, VGONConfig(latent_dim=args.latent_dim, siren_hidden=args.hidden,
                                                 siren_layers=args.layers, w0=args.w0)),
    }  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = builders[name]()
        tc = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=0, progress=False,
                         eval_every=0, ckpt_every=0, log_every=100, threads=args.threads)  # fmt: skip
        t0 = time.perf_counter()
        Trainer(model, ds, tc, out / name, plots=False, quiet=True, overwrite=True).fit()
        seconds = time.perf_counter() - t0
        model.eval()
        nll, mse = reconstruction(model, x_test)
        r = {"parameters": params(model), "config": asdict(model.config), "train_seconds": round(seconds, 1),
             "reconstruction_nll_nats": nll, "reconstruction_mse": mse}  # fmt: skip
        if isinstance(model, VGON):
            with torch.no_grad():
                elbo = torch.cat([model.elbo(x_test[i : i + 100]) for i in range(0, len(x_test), 100)])
            r["elbo_nats"] = elbo.mean().item()
            r["elbo_bpd"] = -elbo.mean().item() / (ds.info.dim * math.log(2))
            r["elbo_bpd_se"] = (elbo.std() / math.sqrt(len(elbo))).item() / (ds.info.dim * math.log(2))
        g = torch.Generator().manual_seed(0)
        for res in (28, 56):
            s = model.sample(64, generator=g, resolution=f"{res},{res}", mean=True)
            save_image_grid(s, out / f"{name}_samples_{res}.png", nrow=8)
        results[name] = r
        print(name, json.dumps(r), flush=True)
        settings = vars(args)
        (out / "gon_mnist.json").write_text(json.dumps({"settings": settings, "results": results}, indent=1))


if __name__ == "__main__":
    main()
