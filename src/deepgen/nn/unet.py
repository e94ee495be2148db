"""The U-Net shared by deepgen's diffusion models (DDPM, DDIM, score SDEs) and energy-based models.

The noise-prediction network of DDPM (Ho, Jain and Abbeel 2020, arXiv:2006.11239): a U-Net
(Ronneberger et al. 2015, arXiv:1505.04597) in the form of PixelCNN++'s backbone (Salimans et al.
2017, arXiv:1701.05517), wide residual blocks (Zagoruyko and Komodakis 2016, arXiv:1605.07146) with
group normalisation (Wu and He 2018, arXiv:1803.08494), self-attention at chosen resolutions, and
the time added to every residual block; with the options of improved DDPM (Nichol and Dhariwal 2021,
arXiv:2102.09672) and ADM (Dhariwal and Nichol 2021, arXiv:2105.05233): multi-head attention and the
embedding as a GroupNorm scale and shift (AdaGN)::

    t -> sinusoidal features (Vaswani et al. 2017) -> Linear, SiLU, Linear -> emb (+ class embedding)
    x -> conv_in -> [level 0: ResBlock x L, downsample] -> ... -> [level n-1: ResBlock x L]
      -> middle: ResBlock, (attention), ResBlock
      -> [level n-1: ResBlock x (L+1)] -> upsample -> ... -> [level 0: ResBlock x (L+1)]
      -> GroupNorm, SiLU, conv_out

Every feature map of the way down (conv_in's, each ResBlock's, each downsample's) is kept and
concatenated, in reverse order, to the input of one ResBlock of the way up: hence ``L + 1`` blocks
per level on the way up. A ResBlock at a level in ``attention_levels`` is followed by multi-head
self-attention over its H*W positions. Downsampling is a stride-2 3x3 convolution (``ceil(h / 2)``,
so 28 -> 14 -> 7 -> 4); upsampling is nearest-neighbour interpolation *to the size of the skip it
meets* followed by a 3x3 convolution, so every image size works (8x8 digits, 28x28 MNIST, 7x9).

``net(x, t, y=None) -> (B, out_channels, H, W)``: ``x`` (B, C, H, W); ``t`` (B,) float (or a scalar
for the whole batch), the timestep or noise level on any real scale: DDPM's integer steps 0..999 as
floats, continuous ``t`` in [0, 1] multiplied by 1000, or ``log(sigma)`` of a score model. The
sinusoid's frequencies run from 1 down to 1/10000 per unit, so all of them vary when the times of
interest span hundreds of units; a range of a few units (raw ``log(sigma)``) is best scaled up
(e.g. ``250 * log(sigma)``). ``y`` (B,) int64 class labels when ``num_classes`` is set, where
``y == num_classes`` (or ``y=None``) means "no class", a learned null embedding for classifier-free
guidance (Ho and Salimans 2022, arXiv:2207.12598).

Speed (``benchmarks/unet_speed.py`` races diffusers' ``UNet2DModel`` at the same architecture, see
:func:`diffusers_equivalent`): the work is in the convolutions and ``scaled_dot_product_attention``,
the same kernels in both; around them this file fuses the query/key/value projections into one
matrix product, applies the embedding's SiLU once, adds in place where autograd allows, and runs
SiLU in place when no graph is recorded (sampling).

>>> net = UNet(in_channels=1, channels=(8, 16), layers_per_block=1, attention_levels=(1,), num_classes=10)
>>> x, t, y = torch.randn(4, 1, 28, 28), torch.tensor([0.0, 10.0, 500.0, 999.0]), torch.tensor([0, 3, 9, 10])
>>> net(x, t, y).shape, bool(net(x, t, y).abs().max() == 0)  # zero-initialised output conv
(torch.Size([4, 1, 28, 28]), True)
>>> UNet(in_channels=3, channels=(8, 16, 16))(torch.randn(2, 3, 7, 9), torch.zeros(2)).shape
torch.Size([2, 3, 7, 9])
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from deepgen.errors import ConfigError, DataError


def group_count(channels: int, max_groups: int | None = None) -> int:
    """GroupNorm groups for ``channels``: the largest divisor of ``channels`` <= ``max_groups``.

    ``max_groups`` None gives ``min(32, channels // 4)``: 32 groups as in DDPM from 128 channels up,
    and at least 4 channels per group below. Why not 32 groups whenever possible: the time embedding
    is added just before a GroupNorm (a constant per channel), and GroupNorm subtracts each group's
    mean, so with one channel per group (32 channels in 32 groups, as DDPM's and diffusers' rule give
    for narrow networks) the block never sees the time at all.
    """
    if max_groups is None:
        max_groups = min(32, channels // 4)
    g = max(1, min(max_groups, channels))
    while channels % g:
        g -= 1
    return g


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of times (B,) -> (B, dim): ``[cos(t * f_i), sin(t * f_i)]``, zero-padded if dim is odd.

    The Transformer's position encoding (Vaswani et al. 2017, arXiv:1706.03762) as DDPM uses it for
    timesteps: ``dim // 2`` frequencies ``f_i = max_period ** (-i / (dim // 2))`` from 1 down to about
    ``1 / max_period``, cosines first (diffusers' ``flip_sin_to_cos=True``). Float32 unless ``t`` is float64.

    >>> timestep_embedding(torch.tensor([0.0, 1.0]), 4)
    tensor([[1.0000, 1.0000, 0.0000, 0.0000],
            [0.5403, 0.9999, 0.8415, 0.0100]])
    """
    half = dim // 2
    dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=dtype, device=t.device) / half)
    args = t.to(dtype)[:, None] * freqs
    return F.pad(torch.cat([args.cos(), args.sin()], dim=1), (0, dim % 2))


def silu(x: torch.Tensor) -> torch.Tensor:
    """SiLU of a fresh tensor (a norm's output), in place when autograd is off (sampling).

    With autograd on, an in-place SiLU would make autograd keep a copy of its input, so nothing is
    saved; with it off, the in-place version spares an allocation per call (a few percent of a
    sampling step on CPU, where eager PyTorch has no fused GroupNorm + SiLU kernel).
    """
    return F.silu(x, inplace=not torch.is_grad_enabled())


@dataclass(frozen=True)
class UNetConfig:
    """Options of :class:`UNet`.

    in_channels: image channels C of x.
    out_channels: output channels; none gives in_channels (2 * in_channels for a learned variance).
    channels: channels of each resolution level, highest resolution first (diffusers'
        block_out_channels); a level after the first halves the resolution.
    layers_per_block: residual blocks per level on the way down (the way up has one more).
    attention_levels: indices into channels of the levels whose residual blocks are followed by
        self-attention (DDPM: the 16x16 level).
    mid_attention: self-attention between the two residual blocks of the middle.
    attention_head_dim: channels per attention head; none gives one head over all channels (DDPM).
    time_embed_dim: width of the time (and class) embedding; none gives 4 * channels[0].
    dropout: dropout before the second convolution of each residual block (DDPM: 0.1 on CIFAR-10).
    num_classes: class-conditional with labels 0..num_classes-1 plus a null label num_classes;
        none is unconditional.
    scale_shift: the embedding scales and shifts the second GroupNorm's output (AdaGN, ADM)
        instead of being added before it (DDPM).
    norm_groups: GroupNorm groups, reduced until they divide the channels; none gives
        min(32, channels // 4), which keeps 4 or more channels per group (see :func:`group_count`).
    zero_init: the output convolution starts at zero, so the network starts by predicting 0.
    """

    in_channels: int = 1
    out_channels: int | None = None
    channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 2
    attention_levels: tuple[int, ...] = ()
    mid_attention: bool = True
    attention_head_dim: int | None = None
    time_embed_dim: int | None = None
    dropout: float = 0.0
    num_classes: int | None = None
    scale_shift: bool = False
    norm_groups: int | None = None
    zero_init: bool = True

    def __post_init__(self):
        if self.in_channels < 1 or (self.out_channels is not None and self.out_channels < 1):
            raise ConfigError(
                f"UNet needs in_channels and out_channels >= 1, got {self.in_channels}, {self.out_channels}"
            )
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(f"UNet channels must be one or more positive numbers, got {self.channels}")
        if self.layers_per_block < 1:
            raise ConfigError(f"UNet layers_per_block must be >= 1, got {self.layers_per_block}")
        bad = [i for i in self.attention_levels if not 0 <= i < len(self.channels)]
        if bad:
            raise ConfigError(f"UNet attention_levels {bad} out of range: levels are 0..{len(self.channels) - 1}")
        if self.attention_head_dim is not None:
            used = [self.channels[i] for i in self.attention_levels] + [self.channels[-1]] * self.mid_attention
            if self.attention_head_dim < 1 or any(c % self.attention_head_dim for c in used):
                raise ConfigError(
                    f"UNet attention_head_dim {self.attention_head_dim} must divide the channels of the attention "
                    f"levels {sorted(set(used))}"
                )
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"UNet dropout must be in [0, 1), got {self.dropout}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ConfigError(f"UNet num_classes must be >= 1 or none, got {self.num_classes}")
        if any(v is not None and v < 1 for v in (self.time_embed_dim, self.norm_groups)):
            raise ConfigError(
                f"UNet time_embed_dim and norm_groups must be >= 1 or none, got {self.time_embed_dim}, "
                f"{self.norm_groups}"
            )


class SelfAttention(nn.Module):
    """``x + proj(MultiHeadAttention(GroupNorm(x)))`` over the H*W positions of (B, C, H, W) features.

    Queries, keys and values come from one fused linear map; the attention itself is
    ``F.scaled_dot_product_attention`` (one head: DDPM; heads of ``head_dim`` channels: ADM). Its CPU
    flash kernel has no second derivative: code that differentiates a gradient (gradient penalties,
    exact score matching) runs the network under ``torch.nn.attention.sdpa_kernel(SDPBackend.MATH)``.
    """

    def __init__(self, channels: int, head_dim: int | None = None, max_groups: int | None = None):
        super().__init__()
        self.heads = channels // head_dim if head_dim else 1
        self.norm = nn.GroupNorm(group_count(channels, max_groups), channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).view(b, c, h * w).transpose(1, 2)  # (B, HW, C), a view
        q, k, v = self.qkv(tokens).view(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C / heads)
        out = self.proj(a.transpose(1, 2).reshape(b, h * w, c))  # (B, HW, C)
        return x + out.transpose(1, 2).view(b, c, h, w)


class ResBlock(nn.Module):
    """DDPM's residual block, (B, C_in, H, W) and embedding (B, E) -> (B, C_out, H, W)::

        h = conv1(SiLU(GroupNorm(x)))
        h = GroupNorm(h + Linear(emb))                    (or AdaGN: GroupNorm(h) * (1 + scale) + shift)
        h = conv2(Dropout(SiLU(h)))
        out = skip(x) + h                                 (skip: a 1x1 conv when C_in != C_out)

    then self-attention when ``attention`` is set. ``emb`` arrives already passed through SiLU (the
    UNet applies it once for all blocks).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        emb_dim: int,
        *,
        dropout: float = 0.0,
        scale_shift: bool = False,
        attention: bool = False,
        head_dim: int | None = None,
        max_groups: int | None = None,
    ):
        super().__init__()
        self.scale_shift = scale_shift
        self.norm1 = nn.GroupNorm(group_count(c_in, max_groups), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * c_out if scale_shift else c_out)
        self.norm2 = nn.GroupNorm(group_count(c_out, max_groups), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.attn = SelfAttention(c_out, head_dim, max_groups) if attention else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(silu(self.norm1(x)))
        e = self.emb_proj(emb)[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = torch.addcmul(shift, self.norm2(h), 1 + scale)
        else:
            h = self.norm2(h.add_(e))  # in place: a convolution's backward does not need its output
        h = self.conv2(self.dropout(silu(h)))
        h = h.add_(self.skip(x))
        return h if self.attn is None else self.attn(h)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling to an exact ``size`` (the skip's), then a 3x3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        return self.conv(F.interpolate(x, size=size, mode="nearest"))


class Level(nn.Module):
    """One resolution of the U-Net: its residual blocks and the resampling that leaves it (or None)."""

    def __init__(self, blocks: list[ResBlock], resample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.resample = resample


class UNet(nn.Module):
    """DDPM's U-Net: (B, C, H, W) images, (B,) times and optional (B,) labels -> (B, out_channels, H, W).

    ``UNet(config)`` or ``UNet(**fields)`` or ``UNet(config, **changed_fields)``; the fields are those
    of :class:`UNetConfig`. See the module docstring for the architecture and calling conventions.
    """

    def __init__(self, config: UNetConfig | None = None, **options):
        super().__init__()
        try:
            cfg = dataclasses.replace(config or UNetConfig(), **options)
        except TypeError as e:
            raise ConfigError(f"UNet: {e}") from None
        self.config = cfg
        ch, n = cfg.channels, len(cfg.channels)
        emb_dim = cfg.time_embed_dim or 4 * ch[0]
        block = dict(
            emb_dim=emb_dim,
            dropout=cfg.dropout,
            scale_shift=cfg.scale_shift,
            head_dim=cfg.attention_head_dim,
            max_groups=cfg.norm_groups,
        )

        self.time_mlp = nn.Sequential(nn.Linear(ch[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_embedding = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None

        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        skips = [ch[0]]  # channels of every feature map kept for the way up
        self.down = nn.ModuleList()
        c = ch[0]
        for i, c_out in enumerate(ch):
            blocks = []
            for _ in range(cfg.layers_per_block):
                blocks.append(ResBlock(c, c_out, attention=i in cfg.attention_levels, **block))
                c = c_out
                skips.append(c)
            down = nn.Conv2d(c, c, 3, stride=2, padding=1) if i < n - 1 else None
            if down is not None:
                skips.append(c)
            self.down.append(Level(blocks, down))

        self.mid = nn.ModuleList([ResBlock(c, c, attention=cfg.mid_attention, **block), ResBlock(c, c, **block)])

        self.up = nn.ModuleList()
        for i in reversed(range(n)):
            blocks = []
            for _ in range(cfg.layers_per_block + 1):
                blocks.append(ResBlock(c + skips.pop(), ch[i], attention=i in cfg.attention_levels, **block))
                c = ch[i]
            self.up.append(Level(blocks, Upsample(c) if i > 0 else None))

        self.norm_out = nn.GroupNorm(group_count(c, cfg.norm_groups), c)
        self.conv_out = nn.Conv2d(c, cfg.out_channels or cfg.in_channels, 3, padding=1)
        if cfg.zero_init:
            nn.init.zeros_(self.conv_out.weight)
            nn.init.zeros_(self.conv_out.bias)

    def embed(self, t: torch.Tensor, y: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(B, E) embedding of times ``t`` (B,) or a scalar, and labels ``y`` (B,) or None (the null class)."""
        if not torch.is_tensor(t):
            t = torch.tensor(float(t), device=self.conv_in.weight.device)
        if t.dim() == 0:
            t = t.expand(batch)
        elif t.shape != (batch,):
            raise DataError(f"UNet: t must have shape ({batch},) or be a scalar, got {tuple(t.shape)}")
        emb = self.time_mlp(timestep_embedding(t, self.config.channels[0]).to(self.conv_in.weight.dtype))
        n = self.config.num_classes
        if n is None:
            if y is not None:
                raise ConfigError("UNet: unconditional (num_classes=None): class labels y are not used")
            return emb
        if y is None:
            return emb + self.class_embedding.weight[n]
        if y.shape != (batch,):
            raise DataError(f"UNet: y must have shape ({batch},), got {tuple(y.shape)}")
        if bool(((y < 0) | (y > n)).any()):
            raise DataError(
                f"UNet: class labels must be in 0..{n} ({n} = no class), got {y.min().item()}..{y.max().item()}"
            )
        return emb + self.class_embedding(y)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, H, W), (B,) [, (B,)] -> (B, out_channels, H, W)."""
        if x.dim() != 4 or x.shape[1] != self.config.in_channels:
            raise DataError(f"UNet: x must be (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        emb = F.silu(self.embed(t, y, x.shape[0]))  # every block applies SiLU first: do it once

        h = self.conv_in(x)
        skips = [h]
        for level in self.down:
            for block in level.blocks:
                h = block(h, emb)
                skips.append(h)
            if level.resample is not None:
                h = level.resample(h)
                skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for level in self.up:
            for block in level.blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), emb)
            if level.resample is not None:
                h = level.resample(h, skips[-1].shape[-2:])
        return self.conv_out(silu(self.norm_out(h)))


# -- diffusers' UNet2DModel in the same architecture ----------------------------------------------


def diffusers_equivalent(
    attention: bool = True,
    *,
    sample_size: int = 28,
    in_channels: int = 1,
    out_channels: int = 1,
    block_out_channels: tuple[int, ...] = (32, 64),
    layers_per_block: int = 1,
) -> tuple[UNetConfig, dict]:
    """(our :class:`UNetConfig`, keyword arguments of diffusers' ``UNet2DModel``) for the same network.

    ``UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(32, 64),
    layers_per_block=1)`` as written fails in diffusers 0.42: its four default block types do not
    match two channel counts. Its defaults cut to two levels give the diffusers kwargs returned here:

    * with attention: down blocks ``("DownBlock2D", "AttnDownBlock2D")``, up blocks ``("AttnUpBlock2D",
      "UpBlock2D")``, the middle block's attention on: attention at every level but the first, one
      attention per residual block, ``attention_head_dim=8`` channels per head;
    * without: ``DownBlock2D`` / ``UpBlock2D`` everywhere and ``add_attention=False``.

    The rest matches diffusers' defaults: GroupNorm with 32 groups and eps 1e-5 everywhere, sinusoidal
    features of ``block_out_channels[0]`` dimensions ordered cos then sin (``flip_sin_to_cos=True``,
    ``freq_shift=0``), a 2-layer SiLU MLP to ``4 * block_out_channels[0]``, SiLU applied to the
    embedding before each block's projection, the embedding added after the first convolution,
    ``layers_per_block + 1`` residual blocks per level on the way up, stride-2 conv downsampling,
    nearest + conv upsampling, a 1x1 shortcut conv when channels change. The parameter counts are
    equal and :func:`load_diffusers_weights` makes the two compute the same function. What differs:

    * queries, keys and values are one fused linear layer here (three in diffusers; the same
      parameters), and the embedding's SiLU is computed once instead of in every block;
    * upsampling goes to the skip's exact size here; diffusers doubles, so odd sizes (7 -> 4 -> 8)
      fail there;
    * our groups shrink to divide the channels (diffusers requires 32 | channels), and the output
      conv is zero-initialised by default (diffusers: PyTorch's default init);
    * our default ``norm_groups`` (none) keeps 4 channels per group; this config asks for diffusers'
      32 groups, under which the 32-channel residual blocks (level 0 of (32, 64)) ignore the time
      embedding altogether (see :func:`group_count`).
    """
    n = len(block_out_channels)
    ours = UNetConfig(
        in_channels=in_channels,
        out_channels=out_channels,
        channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        attention_levels=tuple(range(1, n)) if attention else (),
        mid_attention=attention,
        attention_head_dim=8 if attention else None,
        norm_groups=32,
    )
    down = ("DownBlock2D",) + ("AttnDownBlock2D" if attention else "DownBlock2D",) * (n - 1)
    theirs = dict(
        sample_size=sample_size,
        in_channels=in_channels,
        out_channels=out_channels,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        down_block_types=down,
        up_block_types=tuple(d.replace("Down", "Up") for d in reversed(down)),
        add_attention=attention,
    )
    return ours, theirs


_DIFFUSERS_NAMES = [  # (diffusers' name pattern, ours), applied in order
    (r"^time_embedding\.linear_1\.", "time_mlp.0."),
    (r"^time_embedding\.linear_2\.", "time_mlp.2."),
    (r"^conv_norm_out\.", "norm_out."),
    (r"^(down|up)_blocks\.(\d+)\.resnets\.(\d+)\.", r"\1.\2.blocks.\3."),
    (r"^(down|up)_blocks\.(\d+)\.attentions\.(\d+)\.", r"\1.\2.blocks.\3.attn."),
    (r"^down_blocks\.(\d+)\.downsamplers\.0\.conv\.", r"down.\1.resample."),
    (r"^up_blocks\.(\d+)\.upsamplers\.0\.conv\.", r"up.\1.resample.conv."),
    (r"^mid_block\.resnets\.(\d+)\.", r"mid.\1."),
    (r"^mid_block\.attentions\.0\.", "mid.0.attn."),
    (r"\.time_emb_proj\.", ".emb_proj."),
    (r"\.conv_shortcut\.", ".skip."),
    (r"\.group_norm\.", ".norm."),
    (r"\.to_out\.0\.", ".proj."),
]


def load_diffusers_weights(net: UNet, state_dict: dict[str, torch.Tensor]) -> None:
    """Copy a diffusers ``UNet2DModel`` state dict of the same architecture into ``net`` (strict).

    The architecture must match (see :func:`diffusers_equivalent`); separate ``to_q``, ``to_k``,
    ``to_v`` weights are stacked into our fused ``qkv``. Class embeddings fill the first rows.
    """
    ours: dict[str, torch.Tensor] = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for name, value in state_dict.items():
        for pattern, repl in _DIFFUSERS_NAMES:
            name = re.sub(pattern, repl, name)
        m = re.match(r"(.*)\.to_([qkv])\.(weight|bias)$", name)
        if m:
            qkv.setdefault(f"{m[1]}.qkv.{m[3]}", {})[m[2]] = value
        else:
            ours[name] = value
    for name, parts in qkv.items():
        ours[name] = torch.cat([parts["q"], parts["k"], parts["v"]])
    if "class_embedding.weight" in ours and net.class_embedding is not None:
        table = net.class_embedding.weight.detach().clone()
        table[: len(ours["class_embedding.weight"])] = ours["class_embedding.weight"]
        ours["class_embedding.weight"] = table
    missing, unexpected = net.load_state_dict(ours, strict=False)
    if missing or unexpected:
        raise ConfigError(f"UNet: not the same architecture: missing {missing[:4]}, unexpected {unexpected[:4]}")
