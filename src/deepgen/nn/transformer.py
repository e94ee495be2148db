"""A decoder-only causal transformer over token sequences, with a key/value cache for generation.

The transformer of Vaswani et al. (2017, arXiv:1706.03762) with only its decoder stack and
GPT-2's pre-LayerNorm blocks (Radford et al. 2019; Xiong et al. 2020, arXiv:2002.04745), as
ImageGPT uses it over pixels in raster order (Chen et al. 2020, "Generative Pretraining from
Pixels", ICML). Each block is::

    a = h + Attention(LayerNorm(h))         causal multi-head self-attention
    h' = a + MLP(LayerNorm(a))              GELU, 4 * d_model hidden units

with a learned positional embedding added to the inputs, a final LayerNorm and an (untied) linear
head to ``vocab_size`` logits. A sequence of T tokens ``t_0 .. t_{T-1}`` enters as the *inputs*
``[start, t_0, ..., t_{T-2}]``: input position ``i`` holds ``t_{i-1}`` (the start embedding at 0), so
the output at position ``i`` sees ``t_<i`` only and ``logits[:, i]`` parametrises
``p(t_i | t_<i, y)``. The start embedding is one learned vector, or with ``num_classes`` a class
embedding, so that even ``t_0`` is predicted from the class ``y`` (class conditioning).

API (``net = CausalTransformer(vocab_size, seq_len, ...)``; tokens are int64 in ``0..vocab_size-1``):

* ``net(tokens, y=None) -> logits`` (B, T, V) for T <= seq_len, teacher forcing: one pass gives
  every conditional of the chain rule; ``net.log_prob(tokens, y)`` (B,) sums them.
* Incremental decoding: ``cache = net.init_cache(B)``; ``logits = net.step(None, cache, y)`` gives
  p(t_0 | y); then ``net.step(t_prev, cache)`` (t_prev (B,), the token just chosen) gives
  p(t_i | t_<i, y) for the next position i. A step embeds one position and attends its query over
  the keys and values cached for the earlier ones, so T tokens cost T one-position passes, not T
  full forward passes. ``net(prefix, y, cache=cache)`` fills an empty cache with a whole prefix in
  one pass (its next ``step`` takes the prefix's last token).
* ``net.fill(tokens, free, y=..., temperature=..., generator=...)`` samples the ``free`` positions
  in order given everything before them; ``net.generate(n, y=...)`` samples whole sequences. Used
  as a prior over discrete codes (e.g. a VQ-VAE's code grid flattened row-major), this is all a
  model needs: ``log_prob`` for the prior's likelihood, ``generate`` to sample codes.

>>> net = CausalTransformer(vocab_size=5, seq_len=6, d_model=16, n_layers=1, n_heads=2, num_classes=3)
>>> tokens = torch.randint(0, 5, (4, 6))
>>> y = torch.tensor([0, 1, 2, 0])
>>> net(tokens, y).shape, net.log_prob(tokens, y).shape
(torch.Size([4, 6, 5]), torch.Size([4]))
>>> cache = net.init_cache(4)
>>> steps = [net.step(None, cache, y)] + [net.step(tokens[:, i - 1], cache) for i in range(1, 6)]
>>> torch.allclose(torch.stack(steps, 1), net(tokens, y), atol=1e-5), cache.length
(True, 6)
>>> net.generate(2, y=torch.tensor([1, 2]), generator=torch.Generator().manual_seed(0)).shape
torch.Size([2, 6])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class KVCache:
    """Keys and values of the positions decoded so far, one (B, H, seq_len, d_head) buffer per layer.

    Attributes:
        keys, values: per-layer buffers, allocated once for the full sequence; entries
            ``[:, :, :length]`` are filled.
        length: number of input positions cached (the start position counts as one).
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int = 0

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]


class TransformerBlock(nn.Module):
    """Pre-LayerNorm transformer block: multi-head self-attention (causal unless ``causal=False``),
    then a GELU MLP."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, causal: bool = True):
        super().__init__()
        self.n_heads, self.dropout, self.causal = n_heads, dropout, causal
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.out = nn.Linear(4 * d_model, d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        """(B, T, d) inputs at positions ``cache.length ..`` (0 without a cache) -> (B, T, d)."""
        b, t, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        start = 0
        if cache is not None:
            start = cache.length
            cache.keys[layer][:, :, start : start + t] = k
            cache.values[layer][:, :, start : start + t] = v
            k, v = cache.keys[layer][:, :, : start + t], cache.values[layer][:, :, : start + t]
        p = self.dropout if self.training else 0.0
        if start == 0:  # queries and keys at the same positions: the standard causal mask
            a = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal and t > 1)
        elif t == 1:  # one new query sees every cached position and itself: no mask
            a = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:  # a chunk after cached positions: query i sees keys 0 .. start + i
            mask = torch.ones(t, start + t, dtype=torch.bool, device=h.device).tril(start)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        h = h + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        return h + self.drop(self.out(F.gelu(self.fc(self.ln2(h)))))


class CausalTransformer(nn.Module):
    """Decoder-only causal transformer: ``logits[:, i]`` of p(t_i | t_<i, y), with a key/value cache.

    Args:
        vocab_size: V, number of token values (``0..V-1``).
        seq_len: T, the longest sequence (positions of the learned positional embedding).
        d_model: width of the residual stream.
        n_layers: number of blocks.
        n_heads: attention heads (must divide ``d_model``).
        num_classes: C, class conditioning: the start embedding is ``class_embedding[y]``, so every
            position, the first included, is predicted given the class. None: one learned start
            embedding, no labels.
        dropout: dropout on attention weights and on each residual branch (training mode only).

    Initialisation follows GPT-2: weights N(0, 0.02), residual output projections scaled by
    1 / sqrt(2 * n_layers), zero biases. See the module docstring for the calling conventions.
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        d_model: int = 128,
        n_layers: int = 4,
        n_heads: int = 4,
        num_classes: int | None = None,
        dropout: float = 0.0,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"CausalTransformer: n_heads {n_heads} must divide d_model {d_model}")
        self.vocab_size, self.seq_len, self.num_classes = vocab_size, seq_len, num_classes
        self.d_model, self.n_layers, self.n_heads = d_model, n_layers, n_heads
        self.token_embedding = nn.Embedding(vocab_size, d_model)
        self.position_embedding = nn.Parameter(torch.zeros(seq_len, d_model))
        if num_classes:
            self.class_embedding = nn.Embedding(num_classes, d_model)
        else:
            self.start = nn.Parameter(torch.zeros(d_model))
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(TransformerBlock(d_model, n_heads, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's initialisation (see the class docstring)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for block in self.blocks:
            for layer in (block.proj, block.out):
                nn.init.normal_(layer.weight, std=0.02 / math.sqrt(2 * self.n_layers))
        nn.init.normal_(self.position_embedding, std=0.02)
        if not self.num_classes:
            nn.init.normal_(self.start, std=0.02)

    # -- inputs -----------------------------------------------------------------------------------
    def start_embedding(self, batch: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, d_model) embedding of the start position: the class of ``y`` or the learned start."""
        if self.num_classes:
            if y is None:
                raise ValueError("CausalTransformer: class-conditional (num_classes set): pass labels y")
            return self.class_embedding(y.expand(batch) if y.dim() == 0 else y)
        if y is not None:
            raise ValueError("CausalTransformer: unconditional (num_classes=None): labels y are not used")
        return self.start.expand(batch, -1)

    def embed(self, tokens: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) tokens -> (B, T, d_model) inputs ``[start(y), t_0, ..., t_{T-2}]`` plus positions.

        The last token is not an input: nothing in the sequence is predicted from it.
        """
        b, t = tokens.shape
        if t > self.seq_len:
            raise ValueError(f"CausalTransformer: sequence of {t} tokens, longer than seq_len {self.seq_len}")
        start = self.start_embedding(b, y).unsqueeze(1)
        h = torch.cat([start, self.token_embedding(tokens[:, : t - 1])], 1)
        return h + self.position_embedding[:t]

    def decode(self, h: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """(B, T, d_model) embedded inputs -> (B, T, V) logits, through the blocks (and the cache)."""
        h = self.drop(h)
        for i, block in enumerate(self.blocks):
            h = block(h, cache, i)
        if cache is not None:
            cache.length += h.shape[1]
        return self.head(self.ln_f(h))

    # -- full passes ------------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, y: torch.Tensor | None = None, cache: KVCache | None = None):
        """(B, T) int64 tokens -> (B, T, V) logits; ``logits[:, i]`` parametrises p(t_i | t_<i, y).

        ``cache``: an empty cache (from :meth:`init_cache`) to fill with the T input positions, so
        that decoding continues with ``step(tokens[:, -1], cache)``.
        """
        if cache is not None and cache.length:
            raise ValueError("CausalTransformer: forward fills an empty cache; continue with step()")
        if tokens.shape[1] == 0:
            return torch.zeros(len(tokens), 0, self.vocab_size, device=tokens.device, dtype=self.head.weight.dtype)
        return self.decode(self.embed(tokens, y), cache)

    def log_prob(self, tokens: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B,) exact log p(tokens | y) in nats: the sum over positions of log-softmax at the token."""
        logp = torch.log_softmax(self(tokens, y), -1)
        return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).sum(1)

    # -- incremental decoding ----------------------------------------------------------------------
    def init_cache(
        self, batch: int, *, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> KVCache:
        """An empty cache for ``batch`` sequences (default: the parameters' device and dtype)."""
        w = self.head.weight
        shape = (batch, self.n_heads, self.seq_len, self.d_model // self.n_heads)
        kw = {"device": device or w.device, "dtype": dtype or w.dtype}
        return KVCache([torch.zeros(shape, **kw) for _ in self.blocks], [torch.zeros(shape, **kw) for _ in self.blocks])

    def step(self, prev: torch.Tensor | None, cache: KVCache, y: torch.Tensor | None = None) -> torch.Tensor:
        """Decode one position: (B, V) logits of the next token, p(t_i | t_<i, y) with i = cache.length.

        Args:
            prev: (B,) the previous token t_{i-1}; None for the first position (i = 0).
            cache: the cache of positions 0 .. i-1, extended by position i.
            y: (B,) labels, used (and required with ``num_classes``) at the first position only; the
                class enters through the start embedding, which later steps see in the cache.
        """
        i, b = cache.length, cache.batch_size
        if i >= self.seq_len:
            raise ValueError(f"CausalTransformer: the cache already holds all {self.seq_len} positions")
        if i == 0:
            if prev is not None:
                raise ValueError("CausalTransformer: the first step takes no previous token (prev=None)")
            h = self.start_embedding(b, y)
        else:
            if prev is None:
                raise ValueError(f"CausalTransformer: step {i} needs the previous token")
            h = self.token_embedding(prev)
        h = h + self.position_embedding[i]
        return self.decode(h.unsqueeze(1), cache)[:, 0]

    # -- sampling ----------------------------------------------------------------------------------
    @staticmethod
    def choose(logits: torch.Tensor, temperature: float = 1.0, generator: torch.Generator | None = None):
        """(B,) tokens from (B, V) logits: softmax(logits / temperature) draws; argmax at temperature 0.

        Each call with temperature > 0 is one ``torch.multinomial`` over a (B, V) table from
        ``generator``; torch draws as many random numbers for it whatever the probabilities, so
        two decoders that call it in the same order with (near-)equal logits make the same draws.
        """
        if temperature == 0:
            return logits.argmax(-1)
        return torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator)[:, 0]

    @torch.no_grad()
    def fill(
        self,
        tokens: torch.Tensor,
        free: torch.Tensor,
        *,
        y: torch.Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        cache: bool = True,
    ) -> torch.Tensor:
        """Sample the positions where ``free`` (B, T bool) is True, in order; others keep ``tokens``.

        Each free token is drawn from p(t_i | t_<i, y) given every earlier token (kept or drawn):
        the exact conditional of the free tokens when the kept ones form a prefix. A position draws
        (one :meth:`choose`) when any row has it free. ``cache``: decode one position per step
        through the key/value cache (the longest prefix kept by every row in one pass first);
        False recomputes a forward pass over the prefix at every position (the slow reference,
        same draws).
        """
        tokens, free = tokens.clone(), free.expand_as(tokens)
        b = len(tokens)
        cols = free.any(0).nonzero()
        if len(cols) == 0:
            return tokens
        first, last = int(cols[0]), int(cols[-1])
        kv = None
        if cache:
            kv = self.init_cache(b, device=tokens.device)
            if first > 0:  # the shared kept prefix in one pass; then step from its last token
                self(tokens[:, :first], y, cache=kv)
        for i in range(first, last + 1):
            if cache:
                logits = self.step(tokens[:, i - 1] if i else None, kv, y if i == 0 else None)
            else:
                logits = self(tokens[:, : i + 1], y)[:, i]
            if free[:, i].any():
                tokens[:, i] = torch.where(free[:, i], self.choose(logits, temperature, generator), tokens[:, i])
        return tokens

    @torch.no_grad()
    def generate(
        self,
        n: int,
        *,
        y: torch.Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        cache: bool = True,
    ) -> torch.Tensor:
        """(n, seq_len) int64 token sequences drawn from the model (given labels ``y`` (n,))."""
        device = self.head.weight.device
        tokens = torch.zeros(n, self.seq_len, dtype=torch.long, device=device)
        free = torch.ones_like(tokens, dtype=torch.bool)
        return self.fill(tokens, free, y=y, temperature=temperature, generator=generator, cache=cache)

    def extra_repr(self) -> str:
        c = f", num_classes={self.num_classes}" if self.num_classes else ""
        return f"vocab_size={self.vocab_size}, seq_len={self.seq_len}{c}"
