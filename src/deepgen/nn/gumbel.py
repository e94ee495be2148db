"""The Gumbel-softmax (Concrete) relaxation of categorical samples, and the categorical KL to uniform.

Jang, Gu & Poole (2017), "Categorical Reparameterization with Gumbel-Softmax", arXiv:1611.01144;
Maddison, Mnih & Teh (2017), "The Concrete Distribution", arXiv:1611.00712.

Gumbel-max: with g_k i.i.d. Gumbel(0, 1), ``argmax_k (logits_k + g_k)`` is an exact draw from
Categorical(softmax(logits)). Gumbel-softmax replaces the argmax by ``softmax((logits + g) / tau)``,
a point on the simplex that is differentiable in the logits and tends to the one-hot argmax as
tau -> 0. The straight-through variant (``hard=True``) returns the exact one-hot draw in the forward
pass and the relaxed sample's gradient in the backward pass.

>>> import torch
>>> y = gumbel_softmax(torch.zeros(2, 3, 4), tau=0.5, generator=torch.Generator().manual_seed(0))
>>> y.shape, torch.allclose(y.sum(-1), torch.ones(2, 3))
(torch.Size([2, 3, 4]), True)
>>> kl_categorical_uniform(torch.zeros(2, 3, 4))
tensor([0., 0.])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sample_gumbel(
    shape, *, generator: torch.Generator | None = None, device=None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise ``-log(-log U)``, U ~ Uniform(0, 1), of ``shape``.

    U is floored at the dtype's smallest normal number so that U = 0 (which ``torch.rand`` can
    return) gives a large negative but finite draw instead of -inf.
    """
    dtype = dtype or torch.get_default_dtype()
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return -torch.log(-torch.log(u.clamp_min(torch.finfo(dtype).tiny)))


def gumbel_softmax(
    logits: torch.Tensor,
    tau: float,
    hard: bool = False,
    generator: torch.Generator | None = None,
    *,
    gumbel: torch.Tensor | None = None,
) -> torch.Tensor:
    """A Gumbel-softmax (Concrete) sample over the last dimension of ``logits``.

    Args:
        logits: (..., K) unnormalised log-probabilities of K categories.
        tau: temperature > 0; the samples approach one-hot vectors as tau -> 0.
        hard: straight-through: the forward value is the exact one-hot Gumbel-max draw
            ``one_hot(argmax(logits + g))`` (a sample of Categorical(softmax(logits))) and the
            gradient is that of the relaxed sample ``softmax((logits + g) / tau)``.
        generator: source of the Gumbel noise (on the logits' device).
        gumbel: the Gumbel noise g itself, (..., K), to pair this sample with others drawn from the
            same noise (for example the exact one-hot draw ``argmax(logits + g)``); ``generator``
            is then unused.

    Returns:
        (..., K) points on the simplex (exactly one-hot when ``hard``), of the logits' dtype.
    """
    if not tau > 0:
        raise ValueError(f"gumbel_softmax: temperature tau must be > 0, got {tau}")
    if gumbel is None:
        gumbel = sample_gumbel(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    perturbed = logits + gumbel
    soft = torch.softmax(perturbed / tau, dim=-1)
    if not hard:
        return soft
    one_hot = F.one_hot(perturbed.argmax(-1), logits.shape[-1]).to(soft.dtype)
    # soft - soft.detach() is exactly 0 in the forward pass (x - x == 0 in floating point), so the
    # value is the one-hot draw itself, while the gradient is soft's.
    return one_hot + (soft - soft.detach())


def kl_categorical_uniform(logits: torch.Tensor) -> torch.Tensor:
    """KL(Categorical(softmax(logits)) || Uniform(K)) = sum_k q_k log(q_k K), summed over variables.

    Args:
        logits: (B, ..., K): one categorical variable per entry of the middle dimensions.

    Returns:
        (B,) nats, exact (closed form); zero exactly when every q is uniform.
    """
    log_q = torch.log_softmax(logits, dim=-1)
    kl = (log_q.exp() * (log_q + math.log(logits.shape[-1]))).sum(-1)
    return kl.reshape(len(logits), -1).sum(1)
