"""InfoGAN (Chen et al., 2016, arXiv:1606.03657): a GAN whose generator also takes a structured code c,
kept recoverable from its samples by maximising a lower bound on the mutual information I(c; G(z, c)).

The code is a categorical variable (``categorical`` classes, uniform) and ``continuous`` variables
uniform on [-1, 1]. An auxiliary network Q -- a head on the discriminator's features, so it costs
little -- models q(c | x) with a softmax over the classes and a unit-variance Gaussian per
continuous variable. The variational bound (the paper's Lemma 5.1)

    I(c; G(z, c)) >= E_{c, x ~ G(z, c)} log q(c | x) + H(c) =: L_I

is maximised by both G and Q: the loss adds ``-info_weight * L_I`` (the cross-entropy of the
category, plus ``cont_weight`` times the Gaussian term) to the generator's loss and to the
discriminator's (where only Q and the shared features learn from it; the fakes are detached). The
logged ``mi_bound`` is the categorical part of L_I in nats, at most log(``categorical``).

Sampling options add ``category`` (fix the categorical code, e.g. to draw one discovered class) and
``continuous`` (fix the continuous codes); :meth:`InfoGAN.traversal` draws the grids of the paper's
figures: one row per value of a code, one column per z.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from deepgen.errors import ConfigError
from deepgen.models.gan.gan import GAN, GANConfig, GANSampleConfig
from deepgen.registry import register


@dataclass(frozen=True)
class InfoGANConfig(GANConfig):
    """:class:`GANConfig` plus the code: ``categorical`` classes (0: none), ``continuous`` variables,
    the bound's weight ``info_weight`` and the continuous part's relative weight ``cont_weight``.

    The defaults are the paper's MNIST setup (its appendix): 62 noise variables, the generator
    learning at 1e-3 against the discriminator's 2e-4, and a smaller weight (0.1) on the continuous
    codes than on the categorical one. On digits after 1,500 steps they made the categorical code
    agree with the digit classes 87% / 85% / 70% of the time over seeds 0-2, against 40% (seed 0)
    with the plain GAN's 32 noise variables, one learning rate and weight 0.5
    (docs/benchmarks.md, 16.3). Like the paper's networks, G and D have a fully connected layer of
    1,024 units (``fc``; 0 removes it): on MNIST that layer took the code's agreement with the
    digit classes from 44.7% to over 80% (docs 16.3); on digits it made little difference."""

    latent_dim: int = 62
    lr_g: float | None = 1e-3
    categorical: int = 10
    continuous: int = 2
    info_weight: float = 1.0
    cont_weight: float = 0.1
    fc: int = 1024

    def __post_init__(self):
        super().__post_init__()
        if self.categorical < 0 or self.continuous < 0 or self.categorical + self.continuous == 0:
            raise ConfigError("InfoGANConfig: needs a code (categorical >= 2 or continuous >= 1)")
        if self.categorical == 1:
            raise ConfigError("InfoGANConfig.categorical: one class carries no information; use 0 or >= 2")
        if self.info_weight < 0 or self.cont_weight < 0:
            raise ConfigError("InfoGANConfig: info_weight and cont_weight must be >= 0")


@dataclass(frozen=True)
class InfoGANSampleConfig(GANSampleConfig):
    """GAN sampling options plus ``category`` (a fixed class of the categorical code) and
    ``continuous`` (fixed values of the continuous codes, in [-1, 1])."""

    category: int | None = None
    continuous: tuple[float, ...] | None = None


@register("infogan")
class InfoGAN(GAN):
    """InfoGAN: a GAN with a categorical and continuous code recovered by an auxiliary head Q."""

    Config = InfoGANConfig
    SampleConfig = InfoGANSampleConfig
    test_options = {**GAN.test_options, "categorical": 3, "continuous": 1, "fc": 16}

    def __init__(self, info, config=None):
        cfg = config if config is not None else self.Config()
        self.code_dim = self.q_dim = cfg.categorical + cfg.continuous
        super().__init__(info, config)

    def _code(self, n, device, generator=None, options: InfoGANSampleConfig | None = None):
        cfg = self.config
        parts = []
        if cfg.categorical:
            if options is not None and options.category is not None:
                if not 0 <= options.category < cfg.categorical:
                    raise ConfigError(f"category must be in [0, {cfg.categorical}), got {options.category}")
                k = torch.full((n,), options.category, device=device, dtype=torch.long)
            else:
                k = torch.randint(0, cfg.categorical, (n,), device=device, generator=generator)
            parts.append(F.one_hot(k, cfg.categorical).float())
        if cfg.continuous:
            if options is not None and options.continuous is not None:
                if len(options.continuous) != cfg.continuous:
                    raise ConfigError(f"continuous needs {cfg.continuous} values, got {len(options.continuous)}")
                parts.append(torch.tensor(options.continuous, device=device).float().expand(n, -1))
            else:
                parts.append(2 * torch.rand(n, cfg.continuous, device=device, generator=generator) - 1)
        return torch.cat(parts, 1)

    def _info_terms(self, q: torch.Tensor, code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to minimise, the categorical bound in nats) for Q's output ``q`` on fakes from ``code``."""
        cfg = self.config
        k = cfg.categorical
        loss = q.new_zeros(())
        bound = q.new_zeros(())
        if k:
            ce = F.cross_entropy(q[:, :k], code[:, :k].argmax(1))
            loss = loss + ce
            bound = math.log(k) - ce.detach()
        if cfg.continuous:
            loss = loss + cfg.cont_weight * 0.5 * (q[:, k:] - code[:, k:]).pow(2).sum(1).mean()
        return cfg.info_weight * loss, bound

    def aux_discriminator_loss(self, q_real, q_fake, y, code):
        """Q learns to recover the code of the (detached) fakes; the reals carry no code."""
        return self._info_terms(q_fake, code)[0]

    def generator_extra_loss(self, g_loss, q, code, y):
        loss, bound = self._info_terms(q, code)
        return g_loss + loss, {"mi_bound": bound}

    @torch.no_grad()
    def predict_code(self, x: torch.Tensor) -> torch.Tensor:
        """Q's categorical prediction argmax q(c | x) (B,) for examples ``x``."""
        if not self.config.categorical:
            raise ConfigError("this InfoGAN has no categorical code")
        _, q = self.discriminator.features(x)
        return q[:, : self.config.categorical].argmax(1)

    @torch.no_grad()
    def _sample(self, n, options, *, generator, y):
        z = self._z(n, self.device, generator, options)
        return self.to_data_space(self.generate(z, None, self._code(n, self.device, generator, options)))

    @torch.no_grad()
    def traversal(self, code: str = "categorical", columns: int = 8, steps: int = 7, generator=None) -> torch.Tensor:
        """Samples (rows * columns, *shape) for a traversal grid: one row per value of ``code``
        (``categorical``: each class; ``continuous:J``: ``steps`` values of variable J from -1 to 1,
        the others at 0), one column per z (shared down each column)."""
        cfg, dev = self.config, self.device
        z = self._z(columns, dev, generator)
        rows = []
        if code == "categorical":
            values = [dict(category=k) for k in range(cfg.categorical)]
        elif code.startswith("continuous:"):
            j = int(code.split(":")[1])
            if not 0 <= j < cfg.continuous:
                raise ConfigError(f"continuous code index must be in [0, {cfg.continuous}), got {j}")
            values = []
            for v in torch.linspace(-1, 1, steps).tolist():
                c = [0.0] * cfg.continuous
                c[j] = v
                values.append(dict(continuous=tuple(c)))
        else:
            raise ConfigError(f"code must be 'categorical' or 'continuous:J', got {code!r}")
        gen = torch.Generator(device="cpu").manual_seed(0)
        for v in values:
            opts = InfoGANSampleConfig(**v)
            code_t = self._code(columns, dev, gen, opts)  # the unfixed part is redrawn alike per row
            gen.manual_seed(0)
            rows.append(self.to_data_space(self.generate(z, None, code_t)))
        return torch.cat(rows)
