"""Two SDEs the diffusion models build from the shared ones: a discrete schedule seen in continuous
time, and an SDE restarted from an intermediate time (for editing).

:class:`ScheduleSDE` -- the VP SDE of a discrete DDPM schedule (Song et al. 2021, arXiv:2011.13456,
sec. 3.4 and appendix B: DDPM is a discretisation of the VP SDE). Continuous time tau in [0, 1]
maps to the schedule's (fractional) timesteps by ``t = tau T - 1``, so training timestep i sits at
``tau_i = (i + 1) / T`` and tau = 0 is clean data. ``log alpha_bar(tau)`` is the piecewise-linear
interpolation of ``[0, log ab_0, ..., log ab_{T-1}]`` at ``tau = 0, 1/T, ..., 1``. The VP SDE

    dx = -beta(tau) x / 2 dtau + sqrt(beta(tau)) dw,   beta(tau) = -d log alpha_bar / dtau,

has the kernel ``x_tau | x_0 ~ N(sqrt(ab(tau)) x_0, (1 - ab(tau)) I)`` (Song et al. eq. 29 with
``int_0^tau beta = -log ab(tau)``), so its marginals at every training timestep are *exactly*
DDPM's ``q(x_t | x_0)``; ``beta`` is piecewise constant, ``-T log(1 - beta_i)`` on
``[i/T, (i+1)/T)``. A noise predictor ``eps(x, t)`` gives the score
``-eps(x, tau T - 1) / sqrt(1 - ab(tau))`` at fractional timesteps (networks take real-valued
times), and the probability-flow ODE ``dx/dtau = -beta (x + score) / 2`` (eq. 13) is the ODE of
DDIM's deterministic sampler in the limit of small steps (Song, Meng & Ermon 2021, arXiv:2010.02502,
sec. 4.3).

:class:`TimeScaledSDE` -- an SDE run on ``[0, t0]`` instead of ``[0, 1]``: ``s = t / t0``,
``f'(x, s) = t0 f(x, t0 s)``, ``g'(s) = sqrt(t0) g(t0 s)`` (a change of time variable, which
leaves the marginals ``p'_s = p_{t0 s}`` unchanged). The shared samplers integrate from time 1,
so SDEdit's partial denoising from ``t0`` (Meng et al. 2022, arXiv:2108.01073) runs them on it.
"""

from __future__ import annotations

import torch

from deepgen.diffusion import SDE, DiffusionSchedule


def _times(t, x: torch.Tensor) -> torch.Tensor:
    """Times as a (B,) float64 tensor on x's device, from a float or a (B,) / 0-d tensor."""
    t = torch.as_tensor(t, dtype=torch.float64, device=x.device)
    return t.expand(x.shape[0]) if t.dim() == 0 else t


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))


class ScheduleSDE(SDE):
    """The VP SDE whose marginals at tau = (i + 1) / T are a discrete schedule's (see the module docstring).

    >>> sched = DiffusionSchedule.linear(1000)
    >>> sde = ScheduleSDE(sched)
    >>> x = torch.ones(1, 2, dtype=torch.float64)
    >>> m, s = sde.marginal_prob(x, 500 / 1000)  # timestep 499
    >>> bool(torch.isclose(m[0, 0] ** 2, sched.alpha_bar[499]))
    True
    """

    def __init__(self, schedule: DiffusionSchedule):
        self.schedule = schedule
        self.T = schedule.num_timesteps
        self.log_ab = torch.cat([torch.zeros(1, dtype=torch.float64), schedule.alpha_bar.log()])  # (T + 1,)
        self.betas = -(self.log_ab[1:] - self.log_ab[:-1]) * self.T  # beta(tau) on each interval, (T,)
        self.sampling_eps = 1.0 / self.T  # the first training timestep: networks never saw less noise

    def __repr__(self) -> str:
        return f"ScheduleSDE({self.schedule!r})"

    def log_alpha_bar(self, tau: torch.Tensor) -> torch.Tensor:
        """log ab(tau), float64, same shape as ``tau`` (float64, in [0, 1])."""
        tab = self.log_ab.to(tau.device)
        pos = (tau * self.T).clamp(0, self.T)
        i = pos.floor().clamp(max=self.T - 1).long()
        w = pos - i
        return tab[i] + w * (tab[i + 1] - tab[i])

    def alpha_bar_at(self, t: torch.Tensor) -> torch.Tensor:
        """ab at (fractional) timesteps ``t`` (tau = (t + 1) / T), float64; exact table values at integers."""
        if not t.is_floating_point():
            return self.schedule.alpha_bar.to(t.device)[t]
        return self.log_alpha_bar((t.double() + 1) / self.T).exp()

    def beta(self, tau: torch.Tensor) -> torch.Tensor:
        i = (tau * self.T).floor().clamp(0, self.T - 1).long()
        return self.betas.to(tau.device)[i]

    def sde(self, x, t):
        beta = _bcast(self.beta(_times(t, x)), x)
        return -0.5 * beta * x, beta.sqrt().expand_as(x)

    def marginal_prob(self, x0, t):
        log_ab = _bcast(self.log_alpha_bar(_times(t, x0)), x0)
        return torch.exp(0.5 * log_ab) * x0, torch.sqrt(-torch.expm1(log_ab)).expand_as(x0)

    def corrector_alpha(self, t, dt):
        return 1.0 - float(self.beta(torch.tensor(float(t), dtype=torch.float64))) * abs(dt)


class TimeScaledSDE(SDE):
    """``base`` on [0, t0], re-timed to [0, 1]: s = t / t0 (see the module docstring).

    Score functions for it take the re-timed ``s``; :meth:`score_fn` wraps one of the base SDE.
    """

    def __init__(self, base: SDE, t0: float):
        if not 0 < t0 <= 1:
            raise ValueError(f"t0 must lie in (0, 1], got {t0}")
        self.base, self.t0 = base, float(t0)
        self.prior_std = base.prior_std
        self.sampling_eps = base.sampling_eps / self.t0

    def __repr__(self) -> str:
        return f"TimeScaledSDE({self.base!r}, t0={self.t0:.4g})"

    def sde(self, x, t):
        f, g = self.base.sde(x, _times(t, x) * self.t0)
        return self.t0 * f, self.t0**0.5 * g

    def marginal_prob(self, x0, t):
        return self.base.marginal_prob(x0, _times(t, x0) * self.t0)

    def corrector_alpha(self, t, dt):
        return self.base.corrector_alpha(t * self.t0, dt * self.t0)

    def score_fn(self, score):
        """A score function of the re-timed SDE from one of the base SDE's: ``s -> score(x, t0 s)``."""
        return lambda x, s: score(x, s * self.t0)
