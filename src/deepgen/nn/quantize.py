"""Vector quantisation: the discrete bottleneck of the VQ-VAE (van den Oord, Vinyals & Kavukcuoglu,
2017, "Neural Discrete Representation Learning", arXiv:1711.00937).

Each encoder output vector ``z_e`` (``code_dim`` numbers) is replaced by its nearest codebook entry
``z_q = e_k``, ``k = argmin_j ||z_e - e_j||^2``. The argmin has no gradient, so the decoder's
gradient is copied straight through to the encoder (``z_e + sg(z_q - z_e)``: the value of z_q, the
gradient of z_e), and two terms shape the codebook and the encoder:

* commitment loss ``beta * ||z_e - sg(z_q)||^2`` keeps the encoder's outputs near their codes;
* the codebook either learns by gradient from ``||sg(z_e) - z_q||^2`` (``ema=False``), or, as in the
  paper's appendix (and Razavi et al., 2019, VQ-VAE-2, arXiv:1906.00446), follows exponential
  moving averages of the encoder outputs assigned to it (``ema=True``, no codebook loss):

      N_k <- decay * N_k + (1 - decay) * n_k           n_k: vectors of the batch assigned to code k
      m_k <- decay * m_k + (1 - decay) * s_k           s_k: their sum
      e_k =  m_k / N~_k,   N~_k = (N_k + eps) / (sum_j N_j + K * eps) * sum_j N_j   (Laplace smoothing)

  Laplace smoothing keeps the division finite for a code whose count decays towards zero.

Dead codes: a code that no vector of a training batch chose for ``restart_after`` training calls in
a row is restarted at a randomly chosen encoder output of the current batch (its EMA statistics are
reset to a count of 1 at that vector), as codebook-collapse remedies do (Dhariwal et al., 2020,
Jukebox, arXiv:2005.00341; Williams et al., 2020, arXiv:2002.08111). The replacement is drawn from
torch's global generator (seeded by the trainer), so seeded runs repeat.

EMA updates and restarts happen only in training mode (``update=None``) or when asked
(``update=True``); evaluation and the likelihood never change the codebook. Everything the
quantiser changes lives in buffers (the codebook too when ``ema=True``), so checkpoints and resumed
runs are exact. Single-process: under DistributedDataParallel the buffers are broadcast from rank 0
before every forward, so the EMA follows rank 0's batches (no cross-rank averaging is done here).

Shapes: ``z_e`` (B, ..., code_dim) -> :class:`Quantized` with ``z_q`` of the same shape, ``codes``
(B, ...) int64, per-example losses (B,), and batch statistics ``usage`` (fraction of the K codes
used by the batch) and ``perplexity`` (exp of the entropy of the batch's average assignment: K when
every code is used equally, 1 when one code takes everything).

>>> vq = VectorQuantizer(num_codes=8, code_dim=4)
>>> out = vq(torch.randn(2, 3, 3, 4))
>>> out.z_q.shape, out.codes.shape, out.commitment.shape
(torch.Size([2, 3, 3, 4]), torch.Size([2, 3, 3]), torch.Size([2]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@dataclass
class Quantized:
    """What :class:`VectorQuantizer` returns.

    Attributes:
        z_q: (B, ..., code_dim) quantised vectors with the straight-through gradient to ``z_e``.
        codes: (B, ...) int64 index of each vector's code.
        commitment: (B,) ``beta * sum ||z_e - sg(z_q)||^2`` over each example's vectors.
        codebook: (B,) ``sum ||sg(z_e) - z_q||^2`` per example (zeros with ``ema=True``, where the
            codebook follows moving averages instead).
        usage: scalar, the fraction of codes chosen by at least one vector of the batch (detached).
        perplexity: scalar, ``exp(H(p))`` of the batch's average assignment ``p`` (detached).
    """

    z_q: torch.Tensor
    codes: torch.Tensor
    commitment: torch.Tensor
    codebook: torch.Tensor
    usage: torch.Tensor
    perplexity: torch.Tensor


class VectorQuantizer(nn.Module):
    """Nearest-neighbour vector quantiser with an EMA or a learned codebook and dead-code restarts.

    Args:
        num_codes: K, codebook size.
        code_dim: size of each code vector.
        commitment: beta, weight of the commitment loss (0.25 in the paper).
        ema: update the codebook by exponential moving averages (a buffer) rather than by gradient
            of the codebook loss (a parameter).
        decay: EMA decay (0.99 in the paper).
        eps: Laplace smoothing of the EMA counts.
        restart_after: restart a code unused for this many consecutive training calls at an encoder
            output of the current batch; 0 never restarts.

    Buffers: ``codebook`` (K, code_dim) when ``ema`` (else a parameter of that name), ``ema_count``
    (K,) and ``ema_sum`` (K, code_dim) when ``ema``, ``unused`` (K,) consecutive training calls
    without a vector per code, ``calls`` the number of training calls so far.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        commitment: float = 0.25,
        ema: bool = True,
        decay: float = 0.99,
        eps: float = 1e-5,
        restart_after: int = 100,
    ):
        super().__init__()
        if num_codes < 1 or code_dim < 1:
            raise ValueError(f"VectorQuantizer: num_codes and code_dim must be >= 1, got {num_codes}, {code_dim}")
        if not 0 < decay < 1:
            raise ValueError(f"VectorQuantizer: decay must lie in (0, 1), got {decay}")
        if restart_after < 0:
            raise ValueError(f"VectorQuantizer: restart_after must be >= 0, got {restart_after}")
        self.num_codes, self.code_dim = num_codes, code_dim
        self.beta, self.ema, self.decay, self.eps = commitment, ema, decay, eps
        self.restart_after = restart_after
        # uniform in +-1/K as in the reference implementations; a data-dependent init (init_codebook)
        # replaces it before training
        init = torch.empty(num_codes, code_dim).uniform_(-1.0 / num_codes, 1.0 / num_codes)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(num_codes))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("unused", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    # -- lookups -----------------------------------------------------------------------------------
    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """(N, code_dim) vectors -> (N,) index of the nearest code (squared Euclidean distance)."""
        e = self.codebook.detach()
        d = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(1)
        return d.argmin(1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, ...) int64 codes -> (B, ..., code_dim) code vectors."""
        return F.embedding(codes, self.codebook)

    @torch.no_grad()
    def init_codebook(self, z: torch.Tensor) -> None:
        """Set the codebook to randomly chosen vectors of ``z`` (..., code_dim) (with replacement when
        there are fewer than K), so that every code starts where the encoder's outputs are."""
        flat = z.detach().reshape(-1, self.code_dim)
        if len(flat) >= self.num_codes:
            idx = torch.randperm(len(flat), device=flat.device)[: self.num_codes]
        else:
            idx = torch.randint(len(flat), (self.num_codes,), device=flat.device)
        self.codebook.data.copy_(flat[idx])
        if self.ema:
            self.ema_count.fill_(1.0)
            self.ema_sum.copy_(self.codebook)
        self.unused.zero_()

    # -- the quantiser -----------------------------------------------------------------------------
    def forward(self, z_e: torch.Tensor, update: bool | None = None) -> Quantized:
        """Quantise ``z_e`` (B, ..., code_dim); see :class:`Quantized`.

        ``update``: apply the EMA update and dead-code restarts for this batch (default: in
        training mode). The returned ``z_q`` uses the codebook from before the update.
        """
        if z_e.shape[-1] != self.code_dim:
            raise ValueError(f"VectorQuantizer: expected vectors of size {self.code_dim}, got {z_e.shape[-1]}")
        b = z_e.shape[0]
        flat = z_e.reshape(-1, self.code_dim)
        codes = self.nearest(flat.detach())
        e = self.lookup(codes)  # (N, code_dim), differentiable in the codebook when ema=False
        commitment = self.beta * (flat - e.detach()).pow(2).view(b, -1).sum(1)
        if self.ema:
            codebook = torch.zeros_like(commitment)
        else:
            codebook = (flat.detach() - e).pow(2).view(b, -1).sum(1)
        z_q = flat + (e - flat).detach()  # straight-through: value of e, gradient of z_e
        with torch.no_grad():
            counts = torch.bincount(codes, minlength=self.num_codes).to(flat.dtype)
            usage, perplexity = codebook_usage(counts)
            if self.training if update is None else update:
                self._update(flat.detach(), codes, counts)
        return Quantized(z_q.view_as(z_e), codes.view(z_e.shape[:-1]), commitment, codebook, usage, perplexity)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        """EMA step and dead-code restarts for one batch of (N, code_dim) vectors and their codes.

        Under data-parallel training (a process group), the counts and sums are added over ranks
        before the EMA step, so every rank takes the step of the global batch and the codebooks stay
        identical; restarted codes are then taken from rank 0's batch on every rank.
        """
        self.calls += 1
        sync = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if sync:
            counts = counts.clone()
            dist.all_reduce(counts)
        if self.ema:
            sums = torch.zeros_like(self.ema_sum).index_add_(0, codes, flat.to(self.ema_sum.dtype))
            if sync:
                dist.all_reduce(sums)
            self.ema_count.lerp_(counts.to(self.ema_count.dtype), 1 - self.decay)
            self.ema_sum.lerp_(sums, 1 - self.decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n
            self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(1))
        self.unused.copy_(torch.where(counts > 0, torch.zeros_like(self.unused), self.unused + 1))
        if self.restart_after:
            dead = (self.unused >= self.restart_after).nonzero()[:, 0]
            if len(dead):  # the same codes on every rank (global counts); the same vectors from rank 0
                self.restart(dead, flat)
                if sync:
                    for t in (self.codebook, *((self.ema_count, self.ema_sum) if self.ema else ())):
                        dist.broadcast(t.data, src=0)

    @torch.no_grad()
    def restart(self, dead: torch.Tensor, flat: torch.Tensor) -> None:
        """Move codes ``dead`` (indices) to random rows of ``flat`` (N, code_dim), resetting their stats."""
        pick = flat[torch.randint(len(flat), (len(dead),), device=flat.device)]
        self.codebook.data[dead] = pick.to(self.codebook.dtype)
        if self.ema:
            self.ema_count[dead] = 1.0
            self.ema_sum[dead] = pick.to(self.ema_sum.dtype)
        self.unused[dead] = 0

    def extra_repr(self) -> str:
        how = f"ema (decay={self.decay})" if self.ema else "learned"
        return (
            f"num_codes={self.num_codes}, code_dim={self.code_dim}, beta={self.beta}, {how}, "
            f"restart_after={self.restart_after}"
        )


def codebook_usage(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From (K,) assignment counts: (fraction of codes used, perplexity exp(-sum p log p)), p = counts / sum."""
    total = counts.sum().clamp_min(1)
    p = counts / total
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum()
    return (counts > 0).float().mean(), torch.exp(entropy)
