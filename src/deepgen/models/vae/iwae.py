"""Importance-weighted autoencoder (Burda, Grosse & Salakhutdinov, 2016, arXiv:1509.00519).

The VAE's generative model and posterior network, trained on the k-sample importance-weighted bound

    L_k(x) = E_{z_1..z_k ~ q(z|x)} [ log (1/k) sum_i p(x, z_i) / q(z_i|x) ]

instead of the ELBO (= L_1). L_k <= L_{k+1} <= log p(x), and L_k -> log p(x) as k grows (Burda et
al., theorem 1), so a larger k trains on a tighter bound; the gradient weights each sample by its
normalised importance weight, which lets q(z|x) be broader than a VAE's. The paper trains with
k = 50 (k = 5 here by default, for the cost: the decoder runs on B * k latent codes per step) and
reports log p(x) by importance sampling with K = 5000 (``deepgen eval --full``).

Evaluation is the VAE's: the ELBO (``--k 1``), the per-example ELBO of K draws (``--method elbo``),
or the K-sample importance-sampled estimate (the default, K = ``eval_k``).

>>> import torch
>>> from deepgen.data import DataInfo
>>> model = IWAE(DataInfo("digits", (1, 8, 8), 17), IWAEConfig(latent_dim=8, k=5))
>>> sorted(model.loss(torch.rand(4, 1, 8, 8).round()))
['elbo', 'ess', 'iw_bound', 'kl', 'loss']
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deepgen.config import check_positive
from deepgen.distributions import kl_normal_standard
from deepgen.errors import ConfigError
from deepgen.models.vae.vae import VAE, VAEConfig
from deepgen.registry import register


@dataclass(frozen=True)
class IWAEConfig(VAEConfig):
    """Options of :class:`IWAE`.

    Attributes:
        k: importance samples per example in the training bound L_k (k = 1 is the VAE's ELBO
            with a sampled KL; Burda et al. use 5 and 50).
        latent_dim, arch, hidden, channels, act, decoder, decoder_std: as for the VAE (VAEConfig).
        beta, kl_warmup, free_bits: must stay 1, 0, 0: they reshape the ELBO's KL term, which the
            importance-weighted bound does not have.
    """

    k: int = 5

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "k")
        changed = [
            f"{n}={getattr(self, n)}"
            for n, default in (("beta", 1.0), ("kl_warmup", 0), ("free_bits", 0.0))
            if getattr(self, n) != default
        ]
        if changed:
            raise ConfigError(
                f"IWAEConfig: {', '.join(changed)} reshape the ELBO's KL term, which the importance-weighted "
                "bound has not; use the vae model for them"
            )


@register("iwae")
class IWAE(VAE):
    """Importance-weighted autoencoder: a VAE trained on the k-sample bound L_k (Burda et al., 2016).

    Shapes and networks as :class:`~deepgen.models.vae.vae.VAE`. ``loss`` logs ``iw_bound`` (L_k,
    the objective, nats per example), ``elbo`` (the mean of the same k log-weights: an unbiased
    estimate of the ELBO L_1, always below L_k in expectation), ``kl`` (KL(q(z|x) || p(z)) in
    closed form) and ``ess`` (the effective sample size 1 / sum_i w~_i^2 of the normalised weights,
    between 1 and k: near 1 means one sample dominates each bound).
    """

    Config = IWAEConfig
    test_options = {"latent_dim": 4, "hidden": (32, 32), "channels": (8, 16), "k": 3}

    def loss(self, x, y=None):
        mu, logvar = self.posterior(x)
        k = self.config.k
        # one decoder call on all B * k codes: training keeps every activation for backward anyway
        lw = self._log_weights(x, mu, logvar, k, block=len(x) * k)  # (B, k)
        bound = torch.logsumexp(lw, 1) - math.log(k)
        with torch.no_grad():
            ess = torch.exp(-torch.logsumexp(2 * torch.log_softmax(lw.float(), 1), 1))
        return {
            "loss": -bound.mean() / self.info.dim,
            "iw_bound": bound.mean().detach(),
            "elbo": lw.mean().detach(),
            "kl": kl_normal_standard(mu, logvar).mean().detach(),
            "ess": ess.mean(),
        }
