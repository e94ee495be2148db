"""GAN objectives and discriminator penalties, on the discriminator's raw outputs (logits / scores).

Every loss is written as a pair (L_D, L_G), both *minimised*, for discriminator outputs
``d_real = D(x)`` and ``d_fake = D(G(z))`` (with sigma the logistic function):

=================  ============================================  ===================================
loss               L_D                                           L_G
=================  ============================================  ===================================
``minimax``        -log sigma(D(x)) - log(1 - sigma(D(G(z))))    log(1 - sigma(D(G(z))))
``nonsaturating``  same as minimax                               -log sigma(D(G(z)))
``lsgan``          (D(x) - 1)^2 / 2 + D(G(z))^2 / 2              (D(G(z)) - 1)^2 / 2
``wgan-gp``        D(G(z)) - D(x)  (+ the gradient penalty)      -D(G(z))
``hinge``          max(0, 1 - D(x)) + max(0, 1 + D(G(z)))         -D(G(z))
=================  ============================================  ===================================

(each averaged over the batch). References: minimax and non-saturating, Goodfellow et al. (2014,
arXiv:1406.2661); least squares, Mao et al. (2017, arXiv:1611.04076, the a=0, b=c=1 coding); WGAN-GP,
Gulrajani et al. (2017, arXiv:1704.00028); hinge, Lim & Ye (2017, arXiv:1705.02894) and Miyato et
al. (2018, arXiv:1802.05957). The minimax generator loss saturates -- its gradient vanishes where D
confidently rejects the fakes, as early in training -- which is why the non-saturating one is the default.

Penalties: :func:`gradient_penalty` (WGAN-GP's two-sided penalty on random interpolates between
real and fake examples) and :func:`r1_penalty` (Mescheder et al., 2018, arXiv:1801.04406: the
squared gradient norm at real data).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("minimax", "nonsaturating", "lsgan", "wgan-gp", "hinge")
#: Losses whose discriminator output is a logit of "real" (sigmoid(D) is a probability).
LOGISTIC = ("minimax", "nonsaturating")


def discriminator_loss(kind: str, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """L_D (a scalar, to minimise) from the discriminator's outputs on real and fake batches."""
    if kind in LOGISTIC:
        return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    if kind == "lsgan":
        return 0.5 * ((d_real - 1).pow(2).mean() + d_fake.pow(2).mean())
    if kind == "wgan-gp":
        return d_fake.mean() - d_real.mean()
    if kind == "hinge":
        return F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
    raise ValueError(f"unknown GAN loss {kind!r}; valid: {', '.join(LOSSES)}")


def generator_loss(kind: str, d_fake: torch.Tensor) -> torch.Tensor:
    """L_G (a scalar, to minimise) from the discriminator's outputs on a fake batch."""
    if kind == "minimax":
        return -F.softplus(d_fake).mean()  # log(1 - sigmoid(d)) = -softplus(d)
    if kind == "nonsaturating":
        return F.softplus(-d_fake).mean()
    if kind == "lsgan":
        return 0.5 * (d_fake - 1).pow(2).mean()
    if kind in ("wgan-gp", "hinge"):
        return -d_fake.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; valid: {', '.join(LOSSES)}")


def _input_grad(critic: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """d sum(critic(x)) / dx per example, flattened (B, D), kept in the graph (for a penalty)."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return g.flatten(1)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """E (||grad critic(x_hat)||_2 - 1)^2 at x_hat = e x + (1 - e) x~, e ~ U(0, 1) per example
    (Gulrajani et al., 2017, Algorithm 1). ``critic`` maps a batch to (B,) scores."""
    e = torch.rand((len(real),) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype, generator=generator)
    x_hat = e * real.detach() + (1 - e) * fake.detach()
    return (_input_grad(critic, x_hat).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor) -> torch.Tensor:
    """E ||grad critic(x)||^2 over real examples (Mescheder et al., 2018); scaled by gamma / 2 outside."""
    return _input_grad(critic, real).pow(2).sum(1).mean()
