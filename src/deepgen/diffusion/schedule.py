"""Noise schedules of diffusion models: discrete DDPM schedules and the continuous-time SDEs of score models.

Discrete (Ho et al., 2020, arXiv:2006.11239): ``q(x_t | x_0) = N(sqrt(ab_t) x_0, (1 - ab_t) I)`` with
``ab_t = prod_{s <= t} (1 - beta_s)`` for integer timesteps ``t = 0 .. T-1`` (the paper's t = 1 .. T,
shifted by one as in its code). :class:`DiffusionSchedule` holds the float64 tables and the closed forms a
DDPM needs: forward sampling, the Gaussian posterior ``q(x_{t-1} | x_t, x_0)``, conversions between
epsilon-, x0- and v-predictions, and every term of the variational bound in nats.

Continuous (Song et al., 2021, arXiv:2011.13456): ``dx = f(x, t) dt + g(t) dw`` for ``t`` in [eps, 1]:
:class:`VPSDE`, :class:`SubVPSDE` and :class:`VESDE`, each with the Gaussian perturbation kernel
``marginal_prob``, the prior at t = 1 and the probability-flow drift ``f - g^2 score / 2``.

Shapes: data ``x`` is (B, ...); discrete timesteps ``t`` are int64 (B,) (a Python int is broadcast);
continuous times are a float or a (B,) tensor. Coefficients are gathered from float64 tables and cast
to ``x``'s dtype and device on use, so one schedule serves float32 training and float64 tests.
"""

from __future__ import annotations

import math

import torch

from deepgen.errors import ConfigError

LOG_2PI = math.log(2 * math.pi)


def linear_betas(num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM's linear betas (Ho et al., 2020, sec. 4), float64 (T,).

    ``beta_start`` and ``beta_end`` are the paper's values for T = 1000 and are scaled by 1000 / T for
    other T, as in improved DDPM (Nichol & Dhariwal, 2021, arXiv:2102.09672, its code), so the total
    noise stays comparable.
    """
    num_timesteps = _check_timesteps(num_timesteps)
    scale = 1000.0 / num_timesteps
    if scale * beta_end >= 1:
        raise ConfigError(
            f"linear betas scaled by 1000/T reach {scale * beta_end:.3g} >= 1 for T={num_timesteps}; "
            f"use T >= {math.floor(1000 * beta_end) + 1} or the cosine schedule"
        )
    return torch.linspace(scale * beta_start, scale * beta_end, num_timesteps, dtype=torch.float64)


def cosine_betas(num_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Improved DDPM's cosine schedule (Nichol & Dhariwal, 2021, arXiv:2102.09672, eq. 17), float64 (T,).

    ``ab(t) = f(t) / f(0)`` with ``f(t) = cos^2((t/T + s) / (1 + s) * pi/2)`` and
    ``beta_t = min(1 - ab(t+1) / ab(t), max_beta)``; the clipping prevents the singularity at t = T.
    """
    num_timesteps = _check_timesteps(num_timesteps)
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


def normal_kl(mean1, log_var1, mean2, log_var2) -> torch.Tensor:
    """Elementwise KL(N(mean1, exp(log_var1)) || N(mean2, exp(log_var2))) in nats (broadcasting)."""
    ratio = torch.exp(log_var1 - log_var2)
    return 0.5 * (log_var2 - log_var1 + ratio + (mean1 - mean2) ** 2 * torch.exp(-log_var2) - 1)


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(d)) for d <= 0, accurate on both sides of -log 2 (Maechler, 2012)."""
    return torch.where(d > -math.log(2), torch.log(-torch.expm1(d)), torch.log1p(-torch.exp(d)))


def discretized_gaussian_log_mass(
    x: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor, levels: int
) -> torch.Tensor:
    """Elementwise log mass of a Gaussian discretised on L levels in [-1, 1] (Ho et al., 2020, sec. 3.3).

    The lattice is ``-1 + 2k / (L - 1)``; bin k covers ``x +- 1 / (L - 1)`` (the paper's ``+- 1/255`` for
    L = 256), with the first and last bins extended to -inf and +inf so the masses of the L levels sum to
    exactly 1. Computed with ``log_ndtr`` and a log-difference taken on the side of the bin away from the
    mean, so it stays accurate in the tails (no 1e-12 floor as in the paper's code). Shape: the broadcast
    of the inputs; sum over the data dimensions for a per-example log-likelihood.

    >>> x = torch.tensor([-1.0, 1.0])
    >>> discretized_gaussian_log_mass(x, torch.zeros(2), torch.zeros(2), 2).exp()
    tensor([0.5000, 0.5000])
    """
    levels = _check_levels(levels)
    half = 1.0 / (levels - 1)
    inv_std = torch.exp(-0.5 * log_variance)
    upper = (x - mean + half) * inv_std
    lower = (x - mean - half) * inv_std
    log_cdf_upper = torch.special.log_ndtr(upper)
    log_sf_lower = torch.special.log_ndtr(-lower)
    # Phi(upper) - Phi(lower), or equivalently Phi(-lower) - Phi(-upper): take the side where both
    # probabilities are small, so neither rounds to 1 before the subtraction.
    left = log_cdf_upper + _log1mexp(torch.special.log_ndtr(lower) - log_cdf_upper)
    right = log_sf_lower + _log1mexp(torch.special.log_ndtr(-upper) - log_sf_lower)
    mid = torch.where(upper + lower < 0, left, right)
    k = torch.round((x + 1) / 2 * (levels - 1))
    return torch.where(k <= 0, log_cdf_upper, torch.where(k >= levels - 1, log_sf_lower, mid))


class DiffusionSchedule:
    """A discrete diffusion schedule: float64 tables indexed by integer timesteps 0 .. T-1.

    Tables (float64, shape (T,)): ``betas``, ``alphas = 1 - betas``, ``alpha_bar`` (cumulative product),
    ``alpha_bar_prev`` (1 at t = 0), ``sqrt_alpha_bar``, ``sqrt_one_minus_alpha_bar``,
    ``sqrt_recip_alpha_bar``, ``sqrt_recipm1_alpha_bar``, ``posterior_variance`` (beta-tilde, Ho et al.
    eq. 7), ``posterior_log_variance_clipped`` (its log with the t = 0 entry, which is 0, replaced by
    the t = 1 entry, as in the paper's code), ``posterior_mean_coef1`` and ``posterior_mean_coef2``.

    Construct from betas or with :meth:`linear` / :meth:`cosine`. Methods take ``x`` (B, ...) and
    timesteps ``t`` (B,) int64 and return tensors of ``x``'s shape, dtype and device.

    >>> sched = DiffusionSchedule.linear(1000)
    >>> round(float(sched.alpha_bar[-1]), 6)
    4e-05
    """

    def __init__(self, betas: torch.Tensor):
        betas = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
        if betas.dim() != 1 or len(betas) < 2:
            raise ConfigError(f"betas must be a 1-D sequence of at least 2 values, got shape {tuple(betas.shape)}")
        if not bool(((betas > 0) & (betas < 1)).all()):
            raise ConfigError("betas must all lie in (0, 1)")
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alpha_bar = torch.cumprod(self.alphas, 0)
        self.alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bar[:-1]])
        self.sqrt_alpha_bar = self.alpha_bar.sqrt()
        self.sqrt_one_minus_alpha_bar = (1.0 - self.alpha_bar).sqrt()
        self.sqrt_recip_alpha_bar = self.alpha_bar.rsqrt()
        self.sqrt_recipm1_alpha_bar = (1.0 / self.alpha_bar - 1).sqrt()
        self.posterior_variance = betas * (1.0 - self.alpha_bar_prev) / (1.0 - self.alpha_bar)
        self.posterior_log_variance_clipped = torch.log(
            torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        )
        # sigma_t^2 = beta_t, Ho et al.'s other choice (optimal for x0 ~ N(0, I)); t = 0 as above
        self.large_log_variance = torch.log(torch.cat([self.posterior_variance[1:2], betas[1:]]))
        self.posterior_mean_coef1 = betas * self.alpha_bar_prev.sqrt() / (1.0 - self.alpha_bar)
        self.posterior_mean_coef2 = (1.0 - self.alpha_bar_prev) * self.alphas.sqrt() / (1.0 - self.alpha_bar)
        self._cast: dict[tuple[torch.device, torch.dtype], dict[str, torch.Tensor]] = {}

    @classmethod
    def linear(cls, num_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> DiffusionSchedule:
        """Ho et al.'s linear schedule (see :func:`linear_betas`)."""
        return cls(linear_betas(num_timesteps, beta_start, beta_end))

    @classmethod
    def cosine(cls, num_timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> DiffusionSchedule:
        """Improved DDPM's cosine schedule (see :func:`cosine_betas`)."""
        return cls(cosine_betas(num_timesteps, s, max_beta))

    @property
    def num_timesteps(self) -> int:
        """T, the number of diffusion steps."""
        return len(self.betas)

    def __repr__(self) -> str:
        lo, hi = float(self.betas.min()), float(self.betas.max())
        return f"DiffusionSchedule(T={self.num_timesteps}, beta in [{lo:.3g}, {hi:.3g}])"

    # -- indexing ---------------------------------------------------------------------------------

    def timesteps(self, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
        """Validate timesteps for a batch ``x``: int64 (B,) on ``x``'s device (a Python int is broadcast)."""
        if isinstance(t, int) and not isinstance(t, bool):
            t = torch.full(x.shape[:1], t, dtype=torch.long, device=x.device)
        if not isinstance(t, torch.Tensor) or t.dtype not in (torch.int64, torch.int32) or t.shape != x.shape[:1]:
            got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
            raise ConfigError(f"timesteps must be an integer tensor of shape (B,) = ({x.shape[0]},), got {got}")
        if len(t) and (int(t.min()) < 0 or int(t.max()) >= self.num_timesteps):
            lo, hi = int(t.min()), int(t.max())
            raise ConfigError(f"timesteps must lie in [0, {self.num_timesteps - 1}], got values in {lo}..{hi}")
        return t.to(device=x.device, dtype=torch.long)

    def at(self, name: str, t: torch.Tensor | int, x: torch.Tensor) -> torch.Tensor:
        """Table ``name`` at timesteps ``t``, shaped (B, 1, ..., 1) to broadcast against ``x``, in its dtype/device."""
        key = (x.device, x.dtype)
        cast = self._cast.setdefault(key, {})
        if name not in cast:  # cast on the CPU first: some devices (MPS) have no float64
            cast[name] = getattr(self, name).to(dtype=x.dtype).to(x.device)
        vals = cast[name][self.timesteps(t, x)]
        return vals.view(-1, *([1] * (x.dim() - 1)))

    # -- forward process --------------------------------------------------------------------------

    def q_mean_variance(self, x0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q(x_t | x_0) = N(sqrt(ab_t) x0, (1 - ab_t) I)`` (Ho et al. eq. 4): (mean, variance, log_variance)."""
        mean = self.at("sqrt_alpha_bar", t, x0) * x0
        var = (1 - self.at("alpha_bar", t, x0)).expand_as(x0)
        return mean, var, torch.log(var)

    def q_sample(
        self, x0: torch.Tensor, t, noise: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise`` (Ho et al. eq. 4); noise from ``generator`` if None."""
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        elif noise.shape != x0.shape:
            raise ConfigError(f"noise must have x0's shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
        return self.at("sqrt_alpha_bar", t, x0) * x0 + self.at("sqrt_one_minus_alpha_bar", t, x0) * noise

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``q(x_{t-1} | x_t, x_0)`` (Ho et al. eqs. 6-7): (mean, variance, clipped log-variance), each of x's shape.

        At t = 0 the posterior is the point mass at x0 (mean x0, variance 0); its log-variance is
        clipped to the t = 1 value so KL terms stay finite (t = 0 is scored by the decoder instead).
        """
        mean = self.at("posterior_mean_coef1", t, x_t) * x0 + self.at("posterior_mean_coef2", t, x_t) * x_t
        var = self.at("posterior_variance", t, x_t).expand_as(x_t)
        log_var = self.at("posterior_log_variance_clipped", t, x_t).expand_as(x_t)
        return mean, var, log_var

    # -- parametrisations: epsilon, x0 and v --------------------------------------------------------

    def x0_from_eps(self, x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
        """``x0 = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t)`` (Ho et al. eq. 4 solved for x0)."""
        return self.at("sqrt_recip_alpha_bar", t, x_t) * x_t - self.at("sqrt_recipm1_alpha_bar", t, x_t) * eps

    def eps_from_x0(self, x_t: torch.Tensor, t, x0: torch.Tensor) -> torch.Tensor:
        """``eps = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t)``."""
        return (self.at("sqrt_recip_alpha_bar", t, x_t) * x_t - x0) / self.at("sqrt_recipm1_alpha_bar", t, x_t)

    def velocity(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        """The v target ``v = sqrt(ab_t) eps - sqrt(1 - ab_t) x0`` (Salimans & Ho, 2022, arXiv:2202.00512, sec. 4)."""
        return self.at("sqrt_alpha_bar", t, x0) * eps - self.at("sqrt_one_minus_alpha_bar", t, x0) * x0

    def x0_from_v(self, x_t: torch.Tensor, t, v: torch.Tensor) -> torch.Tensor:
        """``x0 = sqrt(ab_t) x_t - sqrt(1 - ab_t) v`` (Salimans & Ho, 2022, appendix D)."""
        return self.at("sqrt_alpha_bar", t, x_t) * x_t - self.at("sqrt_one_minus_alpha_bar", t, x_t) * v

    def eps_from_v(self, x_t: torch.Tensor, t, v: torch.Tensor) -> torch.Tensor:
        """``eps = sqrt(1 - ab_t) x_t + sqrt(ab_t) v``."""
        return self.at("sqrt_one_minus_alpha_bar", t, x_t) * x_t + self.at("sqrt_alpha_bar", t, x_t) * v

    # -- reverse process and the variational bound ------------------------------------------------

    def p_mean_variance(
        self,
        x_t: torch.Tensor,
        t,
        eps: torch.Tensor,
        *,
        variance: str = "small",
        clip: tuple[float, float] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``p(x_{t-1} | x_t)`` from a predicted eps: (mean, variance, log_variance), each of x's shape.

        The mean is the posterior mean at the predicted ``x0`` (Ho et al. eq. 11), with ``x0`` clamped
        to ``clip`` if given (their images use (-1, 1)). ``variance="small"`` is beta-tilde_t, optimal for
        deterministic x0; ``"large"`` is beta_t, optimal for x0 ~ N(0, I) (Ho et al. sec. 3.2).
        """
        if variance not in ("small", "large"):
            raise ConfigError(f"variance must be 'small' or 'large', got {variance!r}")
        x0 = self.x0_from_eps(x_t, t, eps)
        if clip is not None:
            x0 = x0.clamp(*clip)
        mean, _, log_var = self.q_posterior(x0, x_t, t)
        if variance == "large":
            log_var = self.at("large_log_variance", t, x_t).expand_as(x_t)
        return mean, torch.exp(log_var), log_var

    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """``L_T = KL(q(x_T | x_0) || N(0, I))`` in nats, summed over dimensions: (B,). Ho et al. eq. 5."""
        mean, _, log_var = self.q_mean_variance(x0, self.num_timesteps - 1)
        return normal_kl(mean, log_var, torch.zeros_like(mean), torch.zeros_like(mean)).flatten(1).sum(1)

    def decoder_nll(
        self, x0: torch.Tensor, mean: torch.Tensor, log_variance: torch.Tensor, levels: int
    ) -> torch.Tensor:
        """``L_0 = -log p(x_0 | x_1)`` in nats (B,): the discretised Gaussian on L levels (Ho et al. eq. 13).

        ``x0`` lies on the lattice ``-1 + 2k / (L - 1)``: L = 256 for 8-bit images, 2 for binary data, 17
        for sklearn's digits. See :func:`discretized_gaussian_log_mass`.
        """
        return -discretized_gaussian_log_mass(x0, mean, log_variance, levels).flatten(1).sum(1)

    def vb_term(
        self,
        x0: torch.Tensor,
        x_t: torch.Tensor,
        t,
        mean: torch.Tensor,
        log_variance: torch.Tensor,
        levels: int,
    ) -> torch.Tensor:
        """One term of the variational bound in nats, (B,): ``L_t`` for each example's own timestep.

        For t >= 1 (paper's t >= 2) ``KL(q(x_{t-1} | x_t, x_0) || N(mean, exp(log_variance)))``; at t = 0
        the decoder's ``-log p(x_0 | x_1)``. ``mean`` and ``log_variance`` are the model's p(x_{t-1} | x_t)
        at ``x_t`` (e.g. from :meth:`p_mean_variance`). Then ``-log p(x_0) <= L_T + sum_t L_t`` (Ho et al.
        eq. 5) and ``E_t[T * vb_term]`` with t uniform is an unbiased estimate of the sum (improved DDPM's
        L_vlb). Bits per dimension: nats / (D ln 2).
        """
        t = self.timesteps(t, x_t)
        true_mean, _, true_log_var = self.q_posterior(x0, x_t, t)
        kl = normal_kl(true_mean, true_log_var, mean, log_variance).flatten(1).sum(1)
        # the decoder sees (x0, unit variance) on rows with t >= 1, whose value torch.where discards: a
        # mean from a late step, far in the decoder's tails, has an infinite gradient there, and the
        # discarded branch's 0 * inf would make the gradient NaN
        first = (t == 0).view(-1, *([1] * (x0.dim() - 1)))
        dec_mean = torch.where(first, mean, x0)
        dec_log_var = torch.where(first, log_variance, torch.zeros_like(log_variance))
        return torch.where(t == 0, self.decoder_nll(x0, dec_mean, dec_log_var, levels), kl)

    def variational_bound(self, x0: torch.Tensor, p_fn, levels: int, *, generator: torch.Generator | None = None):
        """Every term of the bound on ``-log p(x_0)`` in nats: (B, T + 1), columns ``L_0 .. L_{T-1}, L_T``.

        ``p_fn(x_t, t) -> (mean, log_variance)`` is the model's reverse step; each t draws its own
        ``x_t ~ q(x_t | x_0)`` from ``generator`` (T network evaluations per batch, as improved DDPM's
        ``calc_bpd_loop``). ``terms.sum(1)`` is the bound in nats (a single-sample estimate, unbiased for
        its expectation); divide by ``D ln 2`` for bits per dimension of L-level data.

        Example::

            terms = sched.variational_bound(x0, lambda x, t: sched.p_mean_variance(x, t, net(x, t))[0::2], 256)
            bpd = terms.sum(1) / (x0[0].numel() * math.log(2))
        """
        cols = []
        for step in range(self.num_timesteps):
            t = torch.full(x0.shape[:1], step, dtype=torch.long, device=x0.device)
            x_t = self.q_sample(x0, t, generator=generator)
            mean, log_var = p_fn(x_t, t)
            cols.append(self.vb_term(x0, x_t, t, mean, log_var, levels))
        cols.append(self.prior_kl(x0))
        return torch.stack(cols, 1)


# -- continuous-time SDEs -----------------------------------------------------------------------------


def _time(t, x: torch.Tensor) -> torch.Tensor:
    """Times as (B, 1, ..., 1) in x's dtype and device, from a float or a (B,) / scalar tensor."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    if t.shape != x.shape[:1]:
        raise ConfigError(f"t must be a float or a tensor of shape (B,) = ({x.shape[0]},), got {tuple(t.shape)}")
    return t.view(-1, *([1] * (x.dim() - 1)))


class SDE:
    """Forward SDE ``dx = f(x, t) dt + g(t) dw`` on t in [0, 1] (Song et al., 2021, arXiv:2011.13456, eq. 5).

    Subclasses define :meth:`sde` and :meth:`marginal_prob` and set ``prior_std`` (the prior at t = 1 is
    ``N(0, prior_std^2 I)``); ``sampling_eps`` is the time sampling stops at (1e-3 for VP, 1e-5 for VE
    in the paper's code).
    """

    sampling_eps = 1e-3
    prior_std = 1.0

    def sde(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(drift f(x, t), diffusion g(t)), both of x's shape."""
        raise NotImplementedError

    def marginal_prob(self, x0: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        """The perturbation kernel ``p_0t(x_t | x_0) = N(mean, std^2 I)``: (mean, std), both of x's shape."""
        raise NotImplementedError

    def prior_sampling(self, shape, *, generator=None, dtype=torch.float32, device=None) -> torch.Tensor:
        """Draw x(1) from the prior ``N(0, I)`` (VE: ``N(0, sigma_max^2 I)``)."""
        return torch.randn(tuple(shape), generator=generator, dtype=dtype, device=device) * self.prior_std

    def prior_logp(self, z: torch.Tensor) -> torch.Tensor:
        """log density of the prior at z, (B,) nats."""
        s = self.prior_std
        return (-0.5 * (z / s) ** 2 - math.log(s) - 0.5 * LOG_2PI).flatten(1).sum(1)

    def probability_flow_drift(self, x: torch.Tensor, t, score_fn) -> torch.Tensor:
        """Probability-flow ODE velocity ``f - g^2 score_fn(x, t) / 2`` (Song et al. eq. 13).

        ``score_fn(x, t)`` receives t as a (B,) tensor in x's dtype and returns x's shape.
        """
        f, g = self.sde(x, t)
        tb = _time(t, x).flatten()
        return f - 0.5 * g**2 * score_fn(x, tb).to(x.dtype)

    def corrector_alpha(self, t: float, dt: float) -> float:
        """The factor alpha_i in the Langevin corrector's step size (Song et al. Alg. 5); 1 unless VP."""
        return 1.0


class VPSDE(SDE):
    """Variance preserving SDE (Song et al. eq. 11), DDPM's limit: ``dx = -beta(t) x / 2 dt + sqrt(beta(t)) dw``.

    ``beta(t) = beta_min + t (beta_max - beta_min)``; ``x_t | x_0 ~ N(exp(c(t)) x_0, (1 - exp(2 c(t))) I)``
    with ``c(t) = -t^2 (beta_max - beta_min) / 4 - t beta_min / 2`` (eq. 29).

    >>> m, s = VPSDE().marginal_prob(torch.ones(1, 2), 1.0)
    >>> round(float(m[0, 0]), 5), round(float(s[0, 0]), 5)
    (0.00657, 0.99998)
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not (0 < beta_min <= beta_max):
            raise ConfigError(f"need 0 < beta_min <= beta_max, got beta_min={beta_min}, beta_max={beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta_min={self.beta_min}, beta_max={self.beta_max})"

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _log_mean_coeff(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def sde(self, x, t):
        beta = self.beta(_time(t, x))
        return -0.5 * beta * x, beta.sqrt().expand_as(x)

    def marginal_prob(self, x0, t):
        c = self._log_mean_coeff(_time(t, x0))
        return torch.exp(c) * x0, torch.sqrt(-torch.expm1(2 * c)).expand_as(x0)

    def corrector_alpha(self, t, dt):
        return 1.0 - float(self.beta(t)) * abs(dt)


class SubVPSDE(VPSDE):
    """Sub-VP SDE (Song et al. eq. 12): VP's drift, diffusion ``sqrt(beta(t) (1 - exp(-2 int_0^t beta)))``.

    Same mean as VP; std ``1 - exp(2 c(t))`` (not its square root), never above VP's, which gave the
    paper's best likelihoods.
    """

    def sde(self, x, t):
        tt = _time(t, x)
        beta = self.beta(tt)
        discount = -torch.expm1(-2 * self.beta_min * tt - (self.beta_max - self.beta_min) * tt**2)
        return -0.5 * beta * x, torch.sqrt(beta * discount).expand_as(x)

    def marginal_prob(self, x0, t):
        c = self._log_mean_coeff(_time(t, x0))
        return torch.exp(c) * x0, (-torch.expm1(2 * c)).expand_as(x0)


class VESDE(SDE):
    """Variance exploding SDE, NCSN's continuous limit (Song et al. eq. 9): ``dx = sqrt(d sigma^2(t) / dt) dw``.

    ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``; ``x_t | x_0 ~ N(x_0, sigma(t)^2 I)`` (the
    paper's kernel, which counts the sigma_min of x(0) in); prior ``N(0, sigma_max^2 I)``. Song & Ermon
    (2020, arXiv:2006.09011, technique 1) set sigma_max to the largest pairwise distance in the
    training data: :meth:`from_data`.
    """

    sampling_eps = 1e-5

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        if not (0 < sigma_min < sigma_max):
            raise ConfigError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min}, sigma_max={sigma_max}")
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.prior_std = self.sigma_max

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max:.4g})"

    @classmethod
    def from_data(cls, x: torch.Tensor, sigma_min: float = 0.01) -> VESDE:
        """sigma_max = the largest Euclidean distance between two examples of ``x`` (B, ...); pass a few thousand."""
        flat = x.detach().flatten(1).double()
        if len(flat) < 2:
            raise ConfigError("VESDE.from_data needs at least 2 examples")
        return cls(sigma_min, float(torch.cdist(flat, flat).max()))

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def sde(self, x, t):
        g = self.sigma(_time(t, x)) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))
        return torch.zeros_like(x), g.expand_as(x)

    def marginal_prob(self, x0, t):
        return x0, self.sigma(_time(t, x0)).expand_as(x0)


def _check_timesteps(n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ConfigError(f"num_timesteps must be an integer >= 2, got {n!r}")
    return n


def _check_levels(levels) -> int:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ConfigError(f"levels must be an integer >= 2 (the number of values per dimension), got {levels!r}")
    return levels
