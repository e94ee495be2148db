"""Samplers for diffusion models: DDPM ancestral, DDIM, EDM's Heun, DPM-Solver++(2M), and score-SDE samplers.

Denoiser conventions (the callables every sampler takes; nothing else of the model is used):

- Discrete schedules (:class:`deepgen.diffusion.DiffusionSchedule`): ``eps_fn(x_t, t) -> eps``, the
  predicted noise of ``x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps``, with ``x_t`` (B, ...) and ``t`` an
  int64 (B,) tensor of *training* timesteps in [0, T-1], on ``x_t``'s device. Every sampler calls it at
  training timesteps only, also when it takes fewer steps. Models predicting x0 or v are adapted with
  :func:`eps_from_x0_fn` / :func:`eps_from_v_fn`.
- SDEs (:class:`deepgen.diffusion.VPSDE` and friends): ``score_fn(x, t) -> grad_x log p_t(x)`` with ``t``
  a float (B,) tensor in [eps, 1] of ``x``'s dtype and device; :func:`score_from_eps` adapts a
  continuous-time noise predictor (``score = -eps / std(t)``).

The initial state ``x_T`` is a tensor, or a shape from which it is drawn from the prior (``N(0, I)``
for discrete schedules and VP SDEs; ``N(0, sigma_max^2 I)`` for VE) with ``generator``, ``dtype`` and
``device``; it is taken as the state at the first visited timestep. ``steps`` is a number of steps
(timesteps evenly spaced from T-1 down to 0, see :func:`sampling_timesteps`) or an explicit sequence
of training timesteps. All randomness comes from
``generator``; outputs are detached, on the state's device and dtype. Discrete samplers end at clean
data (``ab = 1``): the last step returns the model's x0 prediction, without noise.

Data consistency (the ancestral and DDIM samplers): ``constraint(x_s, ab_s) -> x_s`` is applied to
the state after every step, with ``ab_s`` the alpha-bar of the level just reached (1 after the last
step). Inverse problems use it to pull every state onto a noised copy of an observation (RePaint's
replacement, ILVR's low-pass matching); see :func:`replacement_constraint` and
:func:`noise_matched_start`, and ``ddpm_sample(resample=U)`` for RePaint's resampling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from deepgen.diffusion.schedule import SDE, DiffusionSchedule
from deepgen.errors import ConfigError
from deepgen.samplers._checks import randn_like
from deepgen.samplers.ode import odeint, odeint_log_density

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor], None]
Constraint = Callable[[torch.Tensor, float], torch.Tensor]
Steps = int | Sequence[int] | torch.Tensor
Clip = tuple[float, float] | None


# -- adapters ------------------------------------------------------------------------------------------


def eps_from_x0_fn(x0_fn: EpsFn, schedule: DiffusionSchedule) -> EpsFn:
    """Turn an x0-predicting network ``x0_fn(x_t, t)`` into ``eps_fn``: ``eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)``."""
    return lambda x, t: schedule.eps_from_x0(x, t, x0_fn(x, t))


def eps_from_v_fn(v_fn: EpsFn, schedule: DiffusionSchedule) -> EpsFn:
    """Turn a v-predicting network (Salimans & Ho, 2022, arXiv:2202.00512) into ``eps_fn``."""
    return lambda x, t: schedule.eps_from_v(x, t, v_fn(x, t))


def score_from_eps(eps_fn: ScoreFn, sde: SDE) -> ScoreFn:
    """Score of a continuous-time noise predictor: ``score(x, t) = -eps_fn(x, t) / std(t)``."""

    def score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _, std = sde.marginal_prob(x, t)
        return -eps_fn(x, t) / std

    return score


# -- timesteps and checks --------------------------------------------------------------------------------


def sampling_timesteps(
    schedule: DiffusionSchedule, steps: Steps, spacing: str = "uniform", *, start: int | None = None
) -> torch.Tensor:
    """The training timesteps a sampler visits, strictly decreasing, int64 (S,) on the CPU.

    ``steps`` an int S, from timestep ``start`` (default T-1) down: ``"uniform"`` rounds
    ``linspace(start, 0, S)`` (for S >= 2 it ends at 0; S = 1 is the single timestep ``start``);
    ``"karras"`` picks the timesteps whose ``sigma = sqrt((1 - ab) / ab)`` is nearest to EDM's
    ``rho = 7`` spacing between sigma(start) and sigma(0) (Karras et al., 2022, arXiv:2206.00364,
    eq. 5), kept distinct. A sequence of timesteps is validated and sorted in decreasing order;
    ``spacing`` and ``start`` are then ignored.

    >>> sampling_timesteps(DiffusionSchedule.linear(1000), 5).tolist()
    [999, 749, 500, 250, 0]
    """
    T = _check_schedule(schedule).num_timesteps
    if isinstance(steps, (bool, str)) or not isinstance(steps, (int, Sequence, torch.Tensor)):
        raise ConfigError(f"steps must be an integer or a sequence of timesteps, got {type(steps).__name__}")
    if not isinstance(steps, int):
        try:
            ts = torch.as_tensor(steps).flatten()
        except (TypeError, ValueError, RuntimeError):
            raise ConfigError("timesteps must be a non-empty sequence of integers") from None
        if ts.is_floating_point() or ts.is_complex() or ts.dtype == torch.bool or ts.numel() == 0:
            raise ConfigError("timesteps must be a non-empty sequence of integers")
        ts = ts.long().cpu()
        if int(ts.min()) < 0 or int(ts.max()) >= T or len(ts.unique()) != len(ts):
            shown = ts.tolist()[:8] + (["..."] if len(ts) > 8 else [])
            raise ConfigError(f"timesteps must be distinct integers in [0, {T - 1}], got {shown}")
        return ts.sort(descending=True).values
    first = T - 1 if start is None else start
    if not 0 <= first <= T - 1:
        raise ConfigError(f"start must be a timestep in [0, {T - 1}], got {start}")
    if steps < 1 or steps > first + 1:
        raise ConfigError(
            f"steps must be between 1 and {first + 1} (timesteps {first}..0 of the schedule's T={T}), got {steps}"
        )
    if spacing not in ("uniform", "karras"):
        raise ConfigError(f"spacing must be 'uniform' or 'karras', got {spacing!r}")
    if steps == 1:
        return torch.tensor([first])
    if spacing == "uniform":  # floor(x + 1/2), not round-half-even, so steps of exactly 1 stay distinct
        return torch.floor(torch.linspace(first, 0, steps, dtype=torch.float64) + 0.5).long()
    log_sigma = 0.5 * torch.log((1 - schedule.alpha_bar[: first + 1]) / schedule.alpha_bar[: first + 1])  # increasing
    rho = 7.0
    hi, lo = math.exp(float(log_sigma[-1]) / rho), math.exp(float(log_sigma[0]) / rho)
    targets = rho * torch.log(torch.linspace(hi, lo, steps, dtype=torch.float64))
    out: list[int] = []
    for i, target in enumerate(targets):
        t = int((log_sigma - target).abs().argmin())
        t = min(t, out[-1] - 1) if out else t  # distinct and decreasing ...
        out.append(max(t, steps - 1 - i))  # ... leaving room for the steps still to come
    return torch.tensor(out)


def _initial(x_T, generator, dtype, device, std: float = 1.0) -> torch.Tensor:
    if isinstance(x_T, torch.Tensor):
        if x_T.dim() < 1 or not x_T.is_floating_point():
            raise ConfigError(f"x_T must be a floating tensor of shape (B, ...), got {x_T.dtype} {tuple(x_T.shape)}")
        return x_T.detach()
    try:
        shape = tuple(int(s) for s in x_T)
    except TypeError:
        raise ConfigError(f"x_T must be a tensor or a shape (B, ...), got {type(x_T).__name__}") from None
    if not shape or min(shape) < 1:
        raise ConfigError(f"x_T's shape must be (B, ...) with positive sizes, got {shape}")
    return std * torch.randn(shape, generator=generator, dtype=dtype or torch.float32, device=device)


def _check_schedule(schedule) -> DiffusionSchedule:
    if not isinstance(schedule, DiffusionSchedule):
        raise ConfigError(f"schedule must be a DiffusionSchedule, got {type(schedule).__name__}")
    return schedule


def _call(fn, x: torch.Tensor, t: torch.Tensor, what: str) -> torch.Tensor:
    out = fn(x, t)
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"{what} returned {got}, expected the state's shape {tuple(x.shape)}")
    return out.detach().to(x.dtype)


def _denoise(eps_fn: EpsFn, x: torch.Tensor, t: int, ab: float, clip: Clip) -> tuple[torch.Tensor, torch.Tensor]:
    """(eps, x0) predicted at training timestep t; x0 clamped to ``clip`` and eps made consistent with it."""
    tb = torch.full(x.shape[:1], t, dtype=torch.long, device=x.device)
    eps = _call(eps_fn, x, tb, "eps_fn")
    x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    if clip is not None:
        x0 = x0.clamp(*clip)
        eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
    return eps, x0


def _pairs(schedule: DiffusionSchedule, ts: torch.Tensor) -> list[tuple[int, float, float]]:
    """(t, ab_t, ab_prev) per step, in float64: ab_prev is the next visited timestep's, 1 after the last."""
    ab = schedule.alpha_bar
    out = []
    for i, t in enumerate(ts.tolist()):
        prev = float(ab[int(ts[i + 1])]) if i + 1 < len(ts) else 1.0
        out.append((t, float(ab[t]), prev))
    return out


def replacement_constraint(
    project: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    reference: torch.Tensor,
    generator: torch.Generator | None = None,
) -> Constraint:
    """Data consistency by replacement: ``x <- project(x, sqrt(ab) ref + sqrt(1 - ab) z)``, fresh z each step.

    ``reference`` (B, ...) is a clean state that agrees with the observation (in the diffusion's space);
    ``project(x, r)`` is the nearest x' to x that agrees with r wherever the observation constrains
    it: pasting the observed pixels gives RePaint's update without its resampling loops (Lugmayr et al.
    2022, arXiv:2201.09865, eq. 8), replacing the low-pass content gives ILVR (Choi et al. 2021,
    arXiv:2108.02938, eq. 3). The reference is noised to the level the state has just reached, so the
    pasted part is a draw of q(x_s | x_0) like the rest; after the last step (ab = 1) it is pasted
    clean, and the result agrees with the observation exactly.

    >>> ref, x = torch.ones(2, 3), torch.zeros(2, 3)
    >>> paste_first = lambda x, r: torch.cat([r[:, :1], x[:, 1:]], 1)
    >>> replacement_constraint(paste_first, ref)(x, 1.0)
    tensor([[1., 0., 0.],
            [1., 0., 0.]])
    """

    def constraint(x: torch.Tensor, ab: float) -> torch.Tensor:
        if ab >= 1.0:
            return project(x, reference)
        noise = randn_like(reference, generator)
        return project(x, math.sqrt(ab) * reference + math.sqrt(1.0 - ab) * noise)

    return constraint


def noise_matched_start(schedule: DiffusionSchedule, sigma: float) -> tuple[int, float]:
    """``(t, s)``: where to start denoising an observation ``y = x_0 + sigma * n`` (n ~ N(0, I)).

    ``sqrt(ab_t) y = sqrt(ab_t) x_0 + sqrt(ab_t) sigma n`` is a draw of q(x_t | x_0) once its noise
    variance ``ab_t sigma^2`` is topped up to ``1 - ab_t``: t is the first training timestep with
    ``(1 - ab_t) / ab_t >= sigma^2`` and ``s = sqrt(1 - ab_t (1 + sigma^2))`` the std of the extra
    noise (less than one step's worth). The reverse process from ``sqrt(ab_t) y + s z`` then samples
    p(x_0 | y) with a perfect denoiser (exactly when s = 0; the extra noise blurs the observation by
    under one step), with no tuning: the observation is treated as an intermediate state of the
    diffusion, the idea behind DDRM's handling of noisy observations (Kawar et al. 2022,
    arXiv:2201.11793). ``sigma`` is in the diffusion's units (data in [-1, 1]: twice the noise in
    [0, 1] units).

    >>> sched = DiffusionSchedule.linear(1000)
    >>> t, s = noise_matched_start(sched, 0.4)
    >>> ratio = lambda t: (1 - float(sched.alpha_bar[t])) / float(sched.alpha_bar[t])
    >>> ratio(t) >= 0.4**2 > ratio(t - 1), s < 0.05
    (True, True)
    """
    schedule = _check_schedule(schedule)
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ConfigError(f"sigma must be a positive number, got {sigma!r}")
    ab = schedule.alpha_bar.double()
    ratio = (1 - ab) / ab
    reached = torch.nonzero(ratio >= sigma**2)
    if len(reached) == 0:
        raise ConfigError(
            f"noise of std {sigma:g} exceeds the schedule's largest noise-to-signal ratio "
            f"{math.sqrt(float(ratio[-1])):.3g}: nothing of the observation would survive"
        )
    t = int(reached[0])
    a = float(ab[t])
    return t, math.sqrt(max(0.0, 1.0 - a * (1.0 + sigma**2)))


# -- discrete samplers ------------------------------------------------------------------------------------


def ddpm_sample(
    eps_fn: EpsFn,
    schedule: DiffusionSchedule,
    x_T: torch.Tensor | Sequence[int],
    *,
    steps: Steps | None = None,
    variance: str = "small",
    clip: Clip = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    callback: Callback | None = None,
    constraint: Constraint | None = None,
    resample: int = 1,
) -> torch.Tensor:
    """DDPM ancestral sampling (Ho et al., 2020, arXiv:2006.11239, Algorithm 2), on any subset of timesteps.

    Each step draws ``x_{s} ~ N(mu(x_t, x0_hat), sigma^2 I)`` with the Gaussian posterior of eqs. 6-7;
    on a subset t_1 > t_2 > ... of timesteps the betas are respaced, ``beta = 1 - ab_t / ab_s`` for
    consecutive visited t, s (Nichol & Dhariwal, 2021, arXiv:2102.09672, sec. 4). ``variance="small"``
    uses the posterior variance beta-tilde, ``"large"`` uses beta (Ho et al. sec. 3.2). The last step
    returns the mean, without noise.

    Args:
        eps_fn: ``eps_fn(x_t, t) -> eps`` (see the module docstring).
        schedule: the training schedule.
        x_T: initial noise (B, ...) or its shape (drawn from N(0, I)).
        steps: None for all T timesteps, a number of evenly spaced steps, or explicit timesteps.
        variance: ``"small"`` or ``"large"``.
        clip: clamp the predicted x0 to this range (``(-1, 1)`` for images), or None.
        generator, dtype, device: randomness, and x_T's dtype/device when it is a shape.
        callback: ``callback(i, x)`` after step i = 1..S.
        constraint: ``x = constraint(x, ab_s)`` after each step, before the callback (see the module
            docstring), or None.
        resample: RePaint's resampling (Lugmayr et al. 2022, arXiv:2201.09865, Algorithm 1, jump
            length 1): each step t -> s is taken ``resample`` times, the constrained x_s noised back to
            t by q(x_t | x_s) in between, so that what the constraint imposes can reach the rest of x
            through the denoiser before the sampler moves on; 1 is plain sampling. Costs ``resample``
            network evaluations per step.

    Returns:
        Samples (B, ...), detached.

    >>> sched = DiffusionSchedule.linear(100)
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = ddpm_sample(lambda x, t: torch.zeros_like(x), sched, (4, 2), steps=10, generator=gen)
    >>> x.shape
    torch.Size([4, 2])
    """
    schedule = _check_schedule(schedule)
    if variance not in ("small", "large"):
        raise ConfigError(f"variance must be 'small' or 'large', got {variance!r}")
    if isinstance(resample, bool) or not isinstance(resample, int) or resample < 1:
        raise ConfigError(f"resample must be an integer >= 1, got {resample!r}")
    ts = sampling_timesteps(schedule, schedule.num_timesteps if steps is None else steps)
    x = _initial(x_T, generator, dtype, device)
    for i, (t, ab, ab_prev) in enumerate(_pairs(schedule, ts), start=1):
        alpha = ab / ab_prev
        beta = 1 - alpha
        last, x_s = i == len(ts), x
        for u in range(1 if last else resample):
            if u:  # RePaint: back from s to t by the forward process, q(x_t | x_s) = N(sqrt(alpha) x_s, beta)
                x = math.sqrt(alpha) * x_s + math.sqrt(beta) * randn_like(x_s, generator)
            _, x0 = _denoise(eps_fn, x, t, ab, clip)
            mean = (math.sqrt(ab_prev) * beta / (1 - ab)) * x0 + (math.sqrt(alpha) * (1 - ab_prev) / (1 - ab)) * x
            if not last:
                var = beta * (1 - ab_prev) / (1 - ab) if variance == "small" else beta
                x_s = mean + math.sqrt(var) * randn_like(x, generator)
            else:
                x_s = mean
            if constraint is not None:
                x_s = constraint(x_s, ab_prev)
        x = x_s
        if callback is not None:
            callback(i, x)
    return x


def ddim_sample(
    eps_fn: EpsFn,
    schedule: DiffusionSchedule,
    x_T: torch.Tensor | Sequence[int],
    *,
    steps: Steps = 50,
    eta: float = 0.0,
    clip: Clip = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    callback: Callback | None = None,
    constraint: Constraint | None = None,
) -> torch.Tensor:
    """DDIM (Song, Meng & Ermon, 2021, arXiv:2010.02502, eq. 12) on the visited timesteps t > s:

        x_s = sqrt(ab_s) x0_hat + sqrt(1 - ab_s - sigma^2) eps_hat + sigma z,
        sigma = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s)        (eq. 16).

    ``eta = 0`` is deterministic given ``x_T`` (the probability-flow ODE's first-order discretisation);
    ``eta = 1`` is DDPM's ancestral step with the respaced posterior variance, so it gives the same
    distribution as :func:`ddpm_sample` (``variance="small"``) on the same timesteps. Values above 1
    are allowed while ``sigma^2 <= 1 - ab_s`` at every step.

    Args: as :func:`ddpm_sample` (``constraint`` included, ``resample`` not), with ``steps`` defaulting to 50
    and ``eta >= 0``.

    >>> sched = DiffusionSchedule.cosine(100)
    >>> x = ddim_sample(lambda x, t: torch.zeros_like(x), sched, torch.randn(3, 1, 4, 4), steps=5)
    >>> x.shape
    torch.Size([3, 1, 4, 4])
    """
    schedule = _check_schedule(schedule)
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not (math.isfinite(eta) and eta >= 0):
        raise ConfigError(f"eta must be a finite number >= 0, got {eta!r}")
    pairs = _pairs(schedule, sampling_timesteps(schedule, steps))
    sigmas = [eta * math.sqrt((1 - p) / (1 - a) * (1 - a / p)) for _, a, p in pairs]
    for (t, _, ab_prev), s in zip(pairs, sigmas):
        if s * s > 1 - ab_prev + 1e-12:
            raise ConfigError(f"eta={eta} is too large for these timesteps: sigma^2 > 1 - alpha_bar at t={t}")
    x = _initial(x_T, generator, dtype, device)
    for i, ((t, ab, ab_prev), sigma) in enumerate(zip(pairs, sigmas), start=1):
        eps, x0 = _denoise(eps_fn, x, t, ab, clip)
        x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * randn_like(x, generator)
        if constraint is not None:
            x = constraint(x, ab_prev)
        if callback is not None:
            callback(i, x)
    return x


def heun_sample(
    eps_fn: EpsFn,
    schedule: DiffusionSchedule,
    x_T: torch.Tensor | Sequence[int],
    *,
    steps: Steps = 18,
    spacing: str = "karras",
    clip: Clip = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """EDM's deterministic Heun sampler (Karras et al., 2022, arXiv:2206.00364, Algorithm 1) on a VP schedule.

    The VP process ``x_t = sqrt(ab) x0 + sqrt(1 - ab) eps`` is the EDM process ``x~ = x_t / sqrt(ab) =
    x0 + sigma eps`` with ``sigma = sqrt((1 - ab) / ab)``, whose probability-flow ODE is
    ``dx~/dsigma = (x~ - D(x~; sigma)) / sigma = eps_hat``. Heun's second-order step is taken between the
    visited timesteps' sigmas, and a final Euler step to sigma = 0 (as in Algorithm 1), so S timesteps
    cost 2S - 1 network evaluations. No churn (S_churn = 0): the sampler is deterministic given x_T.
    ``spacing="karras"`` picks timesteps near EDM's rho = 7 sigma spacing (see :func:`sampling_timesteps`).

    On the cosine schedule sigma(T-1) is about 2e4 (its last beta is clipped at 0.999; sigma(T-2) is
    about 640): karras spacing then spends most steps on t = 994..999, and Heun's first step from 2e4
    is poor. There, start lower, e.g. ``steps=sampling_timesteps(sched, 18, "karras", start=990)``
    (sigma(990) ~ 71, under EDM's sigma_max = 80; what :class:`~deepgen.models.DDPM` does on the
    cosine schedule).

    Args: as :func:`ddpm_sample`; ``steps`` defaults to 18 (EDM's CIFAR-10 setting: 35 evaluations).
    """
    schedule = _check_schedule(schedule)
    ts = sampling_timesteps(schedule, steps, spacing).tolist()
    abs_ = [float(schedule.alpha_bar[t]) for t in ts]
    sigmas = [math.sqrt((1 - a) / a) for a in abs_] + [0.0]
    x_T = _initial(x_T, generator, dtype, device)
    x = x_T / math.sqrt(abs_[0])  # EDM coordinates

    def slope(x_tilde: torch.Tensor, i: int) -> torch.Tensor:  # (x~ - D(x~)) / sigma_i
        _, x0 = _denoise(eps_fn, x_tilde * math.sqrt(abs_[i]), ts[i], abs_[i], clip)
        return (x_tilde - x0) / sigmas[i]

    for i in range(len(ts)):
        d = slope(x, i)
        h = sigmas[i + 1] - sigmas[i]
        x_next = x + h * d
        if sigmas[i + 1] > 0:
            x_next = x + (0.5 * h) * (d + slope(x_next, i + 1))
        x = x_next
        if callback is not None:
            callback(i + 1, x * math.sqrt(abs_[i + 1]) if i + 1 < len(ts) else x)
    return x


def dpm_solver_pp_sample(
    eps_fn: EpsFn,
    schedule: DiffusionSchedule,
    x_T: torch.Tensor | Sequence[int],
    *,
    steps: Steps = 20,
    spacing: str = "karras",
    clip: Clip = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al., 2022, arXiv:2211.01095, Algorithm 2): a multistep second-order ODE solver.

    With ``alpha = sqrt(ab)``, ``sigma = sqrt(1 - ab)``, ``lambda = log(alpha / sigma)`` and the data
    prediction ``D_i = x0_hat(x_i, t_i)``, each step ``h_i = lambda_i - lambda_{i-1}`` is

        x_i = (sigma_i / sigma_{i-1}) x_{i-1} - alpha_i (exp(-h_i) - 1) D,
        D = (1 + 1 / (2 r_i)) D_{i-1} - D_{i-2} / (2 r_i),   r_i = h_{i-1} / h_i,

    with ``D = D_{i-1}`` on the first step (DPM-Solver++(1) = DDIM). The last step goes to clean data
    (sigma = 0, h infinite) and is first order: it returns ``D`` at the last visited timestep, as
    diffusers' ``lower_order_final``. S timesteps cost S network evaluations. Deterministic given x_T.
    The default ``spacing="karras"`` was 2-5 times more accurate than uniform timesteps at 10-40 steps
    on the linear schedule in this module's tests; on the cosine schedule use ``spacing="uniform"``
    (karras spacing wastes steps there, see :func:`heun_sample`).

    Args: as :func:`ddpm_sample`; ``steps`` defaults to 20.
    """
    schedule = _check_schedule(schedule)
    ts = sampling_timesteps(schedule, steps, spacing).tolist()
    abs_ = [float(schedule.alpha_bar[t]) for t in ts]
    alpha = [math.sqrt(a) for a in abs_]
    sigma = [math.sqrt(1 - a) for a in abs_]
    lam = [math.log(a / s) for a, s in zip(alpha, sigma)]
    x = _initial(x_T, generator, dtype, device)
    d_prev, h_prev = None, None
    for i in range(len(ts)):
        _, d = _denoise(eps_fn, x, ts[i], abs_[i], clip)
        if i + 1 == len(ts):
            x = d
        else:
            h = lam[i + 1] - lam[i]
            c = 0.0 if h_prev is None else 0.5 * h / h_prev  # 1 / (2 r_i)
            dd = d if c == 0.0 else (1 + c) * d - c * d_prev
            x = (sigma[i + 1] / sigma[i]) * x - (alpha[i + 1] * math.expm1(-h)) * dd
            d_prev, h_prev = d, h
        if callback is not None:
            callback(i + 1, x)
    return x


# -- score SDEs -------------------------------------------------------------------------------------------


def _check_sde(sde) -> SDE:
    if not isinstance(sde, SDE):
        raise ConfigError(f"sde must be a deepgen.diffusion SDE (VPSDE, SubVPSDE, VESDE), got {type(sde).__name__}")
    return sde


def _check_eps(eps: float) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not (0 < eps < 1):
        raise ConfigError(f"eps (the smallest time) must lie in (0, 1), got {eps!r}")
    return float(eps)


def _count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def sde_sample(
    score_fn: ScoreFn,
    sde: SDE,
    x_T: torch.Tensor | Sequence[int],
    *,
    steps: int = 1000,
    corrector_steps: int = 0,
    snr: float = 0.16,
    eps: float | None = None,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Reverse-time SDE sampling: Euler-Maruyama predictor with an optional Langevin corrector.

    Predictor-corrector sampling (Song et al., 2021, arXiv:2011.13456, Algorithms 1-2 and 4-5): on
    ``steps`` equal steps from t = 1 down to ``eps``, ``corrector_steps`` Langevin steps

        x <- x + e score(x, t) + sqrt(2 e) z,   e = 2 alpha (snr ||z|| / ||score||)^2

    (alpha = 1 - beta(t) dt for VP SDEs, 1 for VE), then the Euler-Maruyama step of the reverse SDE
    ``x <- x - (f - g^2 score) |dt| + g sqrt(|dt|) z`` (eq. 6). The order (corrector first) and the
    final noise-free step (``denoise``) follow the paper's code, and so do the norms: averaged over the
    batch, so the step size is one number per step. (Per-example norms looked cleaner but fail in low
    dimension: ||score|| near a mode is close to 0, the step explodes, and a state-dependent step no
    longer leaves p_t invariant; 2-D Gaussian samples came out 2.5-5 times too wide.) Examples thus
    interact only through that scalar; pass batches of at least a few dozen.

    Args:
        score_fn: ``score_fn(x, t) -> score`` (see the module docstring).
        sde: the forward SDE (its prior gives x_T when a shape is passed).
        x_T: initial state (B, ...) or its shape.
        steps: predictor steps (>= 1); corrector_steps: Langevin steps per predictor step (>= 0).
        snr: the corrector's signal-to-noise ratio r (0.16 in the paper's CIFAR-10 configs).
        eps: the final time; default ``sde.sampling_eps`` (1e-3 VP, 1e-5 VE).
        denoise: make the last predictor step noise-free (return its mean).
        generator, dtype, device, callback: as :func:`ddpm_sample`.
    """
    sde = _check_sde(sde)
    _count("steps", steps, 1)
    _count("corrector_steps", corrector_steps, 0)
    if corrector_steps and not (isinstance(snr, (int, float)) and math.isfinite(snr) and snr > 0):
        raise ConfigError(f"snr must be a finite number > 0, got {snr!r}")
    eps = _check_eps(sde.sampling_eps if eps is None else eps)
    x = _initial(x_T, generator, dtype, device, std=sde.prior_std)
    times = torch.linspace(1.0, eps, steps + 1, dtype=torch.float64).tolist()
    for i in range(steps):
        t, dt = times[i], times[i + 1] - times[i]
        tb = torch.full(x.shape[:1], t, dtype=x.dtype, device=x.device)
        for _ in range(corrector_steps):
            g = _call(score_fn, x, tb, "score_fn")
            z = randn_like(x, generator)
            g_norm = float(g.flatten(1).norm(dim=1).mean())
            if not g_norm > 0:  # a zero score gives no direction and an unbounded step size: no correction
                continue
            ratio = float(z.flatten(1).norm(dim=1).mean()) / g_norm
            e = 2 * sde.corrector_alpha(t, dt) * (snr * ratio) ** 2
            x = x + e * g + math.sqrt(2 * e) * z
        f, g = sde.sde(x, tb)
        x = x + (f - g**2 * _call(score_fn, x, tb, "score_fn")) * dt
        if not (denoise and i + 1 == steps):
            x = x + g * math.sqrt(-dt) * randn_like(x, generator)
        if callback is not None:
            callback(i + 1, x)
    return x


def probability_flow_sample(
    score_fn: ScoreFn,
    sde: SDE,
    x_T: torch.Tensor | Sequence[int],
    *,
    eps: float | None = None,
    method: str = "rk45",
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Sample by integrating the probability-flow ODE (Song et al., 2021, eq. 13) from t = 1 down to ``eps``.

    Deterministic given ``x_T``; uses :func:`deepgen.samplers.odeint` (adaptive RK45 with the paper's
    tolerances 1e-5 by default, or a fixed-step method with ``steps``) in float64. ``score_fn`` receives
    float64 states. Returns x(eps) in x_T's dtype (no final denoising step: at eps = 1e-3 the VP
    marginal's remaining noise has std 0.01).
    """
    sde = _check_sde(sde)
    eps = _check_eps(sde.sampling_eps if eps is None else eps)
    x = _initial(x_T, generator, dtype, device, std=sde.prior_std)

    def field(t: float, z: torch.Tensor) -> torch.Tensor:
        return sde.probability_flow_drift(z, t, lambda y, tb: _call(score_fn, y, tb, "score_fn"))

    out = odeint(field, x, 1.0, eps, method=method, steps=steps, rtol=rtol, atol=atol)
    return out.detach().to(x.dtype)


def probability_flow_log_likelihood(
    score_fn: ScoreFn,
    sde: SDE,
    x: torch.Tensor,
    *,
    eps: float = 1e-5,
    divergence: str = "auto",
    n_probes: int = 1,
    probe: str = "rademacher",
    generator: torch.Generator | None = None,
    method: str = "rk45",
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact log-density of the probability-flow ODE's model at ``x``, in nats (Song et al., 2021, sec. 4.3).

    Integrates ``dx/dt = f - g^2 score / 2`` with ``d log p / dt = -div`` from ``eps`` to 1 through
    :func:`deepgen.samplers.odeint_log_density`, then ``log p_eps(x) = log p_1(z) + int div dt``
    with the SDE's prior as p_1. ``divergence="auto"`` is exact (D backward passes per evaluation) for
    D <= 16 dimensions and Hutchinson's estimator with ``n_probes`` fixed probes otherwise (Grathwohl et
    al., 2019; the result is then an unbiased estimate of the log-density, not a bound).

    Units: a *density* of continuous x at time eps. For data on L levels in [-1, 1] (bin width
    2 / (L - 1)), ``-log p(x + u) - D log(2 / (L - 1))`` with uniform dequantisation u over a bin is
    an upper bound on the discrete NLL in expectation; bits/dim divides that by ``D ln 2``.

    Returns:
        ``(log_p, z)``: (B,) float64 log-densities and the latent ``z = x(1)`` (B, ...), float64.
    """
    sde = _check_sde(sde)
    eps = _check_eps(eps)
    if not isinstance(x, torch.Tensor) or x.dim() < 1 or not x.is_floating_point():
        raise ConfigError("x must be a floating tensor of shape (B, ...)")
    if divergence not in ("auto", "exact", "hutchinson"):
        raise ConfigError(f"divergence must be 'auto', 'exact' or 'hutchinson', got {divergence!r}")
    if divergence == "auto":
        divergence = "exact" if x[0].numel() <= 16 else "hutchinson"

    def field(t: float, z: torch.Tensor) -> torch.Tensor:
        return sde.probability_flow_drift(z, t, lambda y, tb: score_fn(y, tb))

    z, dlogp = odeint_log_density(
        field,
        x.detach(),
        eps,
        1.0,
        divergence=divergence,
        n_probes=n_probes,
        probe=probe,
        generator=generator,
        method=method,
        steps=steps,
        rtol=rtol,
        atol=atol,
    )
    return (sde.prior_logp(z) - dlogp).detach(), z.detach()
