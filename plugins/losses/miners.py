"""Built-in negative miners. A miner is ``miner(sim, positive_mask, margin) -> bool [2N, 2N]``: from the
(detached) float32 cosine-similarity matrix, the positive mask (one positive per row) and the margin m, it selects
(anchor i, negative k) pairs, never the diagonal or a positive, without reading values back to the host."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Miner = Callable[[Tensor, Tensor, float], Tensor]


def negatives(positive_mask: Tensor) -> Tensor:
    """Every pair (i, k) with k neither i nor a positive of i."""
    eye = torch.eye(positive_mask.shape[0], dtype=torch.bool, device=positive_mask.device)
    return ~(positive_mask | eye)


def positive_similarity(sim: Tensor, positive_mask: Tensor) -> Tensor:
    """s_i,p(i) as a [2N, 1] column."""
    return torch.where(positive_mask, sim, 0.0).sum(dim=1, keepdim=True)


def mine_all(sim: Tensor, positive_mask: Tensor, margin: float) -> Tensor:
    return negatives(positive_mask)


def mine_semi_hard(sim: Tensor, positive_mask: Tensor, margin: float) -> Tensor:
    s_pos = positive_similarity(sim, positive_mask)
    return negatives(positive_mask) & (sim > s_pos - margin) & (sim < s_pos)


def mine_violating(sim: Tensor, positive_mask: Tensor, margin: float) -> Tensor:
    return negatives(positive_mask) & (sim > positive_similarity(sim, positive_mask) - margin)


def mine_hardest(sim: Tensor, positive_mask: Tensor, margin: float) -> Tensor:
    allowed = negatives(positive_mask)
    hardest = sim.masked_fill(~allowed, float("-inf")).argmax(dim=1, keepdim=True)
    return torch.zeros_like(allowed).scatter_(1, hardest, True) & allowed


BUILTIN_MINERS: dict[str, tuple[Miner, str]] = {
    "all": (mine_all, "every negative"),
    "semi_hard": (mine_semi_hard, "negatives inside the margin but less similar than the positive"),
    "violating": (mine_violating, "negatives with a non-zero triplet term (hard and semi-hard)"),
    "hardest": (mine_hardest, "per anchor, the single most similar negative"),
}
