"""The MADE network: a masked MLP whose outputs for dimension d see only the inputs before d.

Germain, Gregor, Murray & Larochelle, "MADE: Masked Autoencoder for Distribution Estimation" (2015,
arXiv:1502.03509). It lives in ``nn`` because two families build on it: the ``made`` model
(:mod:`deepgen.models.autoregressive.made`) and the masked autoregressive flows MAF/IAF
(:mod:`deepgen.bijectors.autoregressive`), which use it as their conditioner.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepgen.errors import ConfigError
from deepgen.nn.masked import MaskedLinear, made_degrees, made_masks


class MADENetwork(nn.Module):
    """Masked MLP, the MADE conditioner: (B, D) -> (B, D, P) parameters, autoregressive in an ordering.

    ``forward(x)[:, d, :]`` (the P parameters of dimension d) depends only on the inputs before d in
    the ordering of the mask in use; this is what MAF/IAF use as their conditioner.

    Args:
        num_inputs: D.
        params_per_dim: P, outputs per dimension.
        hidden: hidden layer sizes (any number, ReLU between them; ``()`` leaves only the masked
            output layer, a fully visible sigmoid belief net for Bernoulli outputs).
        order: ``"natural"`` (0, 1, ..., D-1), ``"random"`` (a seeded permutation), or an explicit
            permutation (``order[0]`` comes first).
        num_masks: K, masks of connectivity-agnostic training; :meth:`use_mask` selects one.
        resample_order: give every mask after the first its own random ordering (order-agnostic
            training); only with ``order="random"``.
        direct: add a masked linear connection from the inputs straight to the outputs (output d
            sees inputs before d in the ordering): a fully visible sigmoid belief net beside the
            hidden layers, as in the paper's experiments (``direct_input_connect="Output"`` in the
            authors' code).
        seed: seed of the orderings and hidden degrees.
        context_features: F, the size of an optional conditioning vector (a conditional flow's label
            embedding). It enters through unmasked linear maps (no bias): ``context_hidden`` into the
            first hidden layer's pre-activation, and ``context_output`` straight into the outputs.
            The second is needed, not only a shortcut: the first dimension of the ordering sees no
            hidden unit (its outputs are constants of ``x``), so only a direct path conditions it.
            Every output may see all of the context; the autoregressive property in ``x`` is
            unchanged. ``None`` (default) builds neither layer, so the network, its initialisation
            and its checkpoints are exactly those of a network without context.

    Buffers: ``degrees{l}`` (K, size of layer l) for the inputs (l = 0) and every hidden layer, and
    each layer's ``mask``; ``current`` is the index of the mask in use.
    """

    def __init__(
        self,
        num_inputs: int,
        params_per_dim: int = 1,
        hidden: Sequence[int] = (500,),
        *,
        order: str | Sequence[int] = "natural",
        num_masks: int = 1,
        resample_order: bool = False,
        direct: bool = False,
        seed: int = 0,
        context_features: int | None = None,
    ):
        super().__init__()
        d, self.params_per_dim, self.num_masks = num_inputs, params_per_dim, num_masks
        g = torch.Generator().manual_seed(seed)
        if isinstance(order, str) and order not in ("natural", "random"):
            raise ConfigError(f"MADE order must be natural, random or a permutation, got {order!r}")
        if resample_order and order != "random":
            raise ConfigError("MADE: resample_order needs order=random")
        if order == "natural":
            base = torch.arange(d)
        else:
            base = torch.randperm(d, generator=g) if order == "random" else torch.as_tensor(order)
        per_mask = []
        for k in range(num_masks):
            o = torch.randperm(d, generator=g) if resample_order and k > 0 else base
            per_mask.append(made_degrees(d, hidden, order=o, generator=g))
        self.num_layers = len(hidden) + 1
        for layer in range(self.num_layers):
            self.register_buffer(f"degrees{layer}", torch.stack([m[layer] for m in per_mask]))
        sizes = [d, *hidden]
        self.hidden = nn.ModuleList(MaskedLinear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.output = MaskedLinear(sizes[-1], params_per_dim * d)
        self.direct = MaskedLinear(d, params_per_dim * d, bias=False) if direct else None
        # created last, so that the other layers' initialisation is that of a network without context
        self.context_features = context_features
        self.context_hidden = self.context_output = None
        if context_features is not None:
            if context_features < 1:
                raise ConfigError(f"MADE context_features must be positive or None, got {context_features}")
            if len(hidden):
                self.context_hidden = nn.Linear(context_features, hidden[0], bias=False)
            self.context_output = nn.Linear(context_features, params_per_dim * d, bias=False)
        self.current = 0
        self.use_mask(0)

    @property
    def num_inputs(self) -> int:
        return self.degrees0.shape[1]

    def use_mask(self, k: int) -> None:
        """Switch every layer to mask ``k`` of the seeded set (the weights are untouched).

        The masks are recomputed from the degree buffers on every call (cheap next to a forward
        pass), so no cached state can disagree with a loaded checkpoint or a DDP buffer broadcast.
        Each layer gets a *new* mask tensor rather than an in-place copy: the previous mask may be
        saved by autograd for a backward pass still to come (an ensemble's log-likelihood uses several).
        """
        if not 0 <= k < self.num_masks:
            raise ConfigError(f"MADE mask_index must lie in 0..{self.num_masks - 1}, got {k}")
        degrees = [getattr(self, f"degrees{layer}")[k] for layer in range(self.num_layers)]
        # parameter-major outputs (all first parameters, then all second ...), as the heads expect
        masks = made_masks(degrees, degrees[0].repeat(self.params_per_dim))
        for layer, mask in zip([*self.hidden, self.output], masks):
            layer.mask = mask.to(layer.mask)
        if self.direct is not None:  # output d sees inputs of lower degree: the strict output rule
            out = degrees[0].repeat(self.params_per_dim)
            self.direct.mask = (out[:, None] > degrees[0][None, :]).float().to(self.direct.mask)
        self.current = k

    def order(self, k: int | None = None) -> torch.Tensor:
        """(D,) the ordering of mask ``k`` (default: the one in use): ``order[0]`` is generated first."""
        return torch.argsort(self.degrees0[self.current if k is None else k])

    def _check_context(self, context: torch.Tensor | None) -> None:
        if self.context_features is None:
            if context is not None:
                raise ValueError("this MADENetwork has no context input (build it with context_features=F)")
            return
        if context is None:
            raise ValueError(f"this MADENetwork was built with context_features={self.context_features}: pass context")
        if context.dim() != 2 or context.shape[1] != self.context_features:
            raise ValueError(f"MADE context must have shape (B, {self.context_features}), got {tuple(context.shape)}")

    def flat_params(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) -> (B, P * D), parameter-major (the layout of :class:`deepgen.nn.LikelihoodHead`).

        ``context`` (B, F) is required when the network was built with ``context_features``.
        """
        self._check_context(context)
        h = x
        for i, layer in enumerate(self.hidden):
            h = layer(h)
            if i == 0 and self.context_hidden is not None:
                h = h + self.context_hidden(context)
            h = torch.relu(h)
        out = self.output(h)
        if self.context_output is not None:
            out = out + self.context_output(context)
        return out if self.direct is None else out + self.direct(x)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) -> (B, D, P): the P parameters of each dimension's conditional (given ``context`` (B, F))."""
        return self.flat_params(x, context).view(len(x), self.params_per_dim, self.num_inputs).transpose(1, 2)
