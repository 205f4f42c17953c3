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


def one_per_row(columns: Tensor, allowed: Tensor) -> Tensor:
    """The mask selecting column ``columns[i]`` in row i ([2N] indices), kept within ``allowed``."""
    return torch.zeros_like(allowed).scatter_(1, columns[:, None], True) & allowed


def mine_semi_hard(sim: Tensor, positive_mask: Tensor, margin: float) -> Tensor:
    """FaceNet's semi-hard negative as TensorFlow's ``triplet_semihard_loss`` picks it: per anchor, the most similar
    negative that is still less similar than the positive; where no negative is, the least similar negative
    (every negative is harder than the positive, and the easiest of them still has a non-zero term). One
    negative per anchor: the loss is a mean over all 2N anchors, and an anchor whose positive is less similar
    than every negative is pulled at any margin, m = 0 included."""
    allowed = negatives(positive_mask)
    below = allowed & (sim < positive_similarity(sim, positive_mask))
    semi_hard = sim.masked_fill(~below, float("-inf")).argmax(dim=1)
    easiest = sim.masked_fill(~allowed, float("inf")).argmin(dim=1)
    return one_per_row(torch.where(below.any(dim=1), semi_hard, easiest), allowed)


def mine_violating(sim: Tensor, positive_mask: Tensor, margin: float) -> Tensor:
    return negatives(positive_mask) & (sim > positive_similarity(sim, positive_mask) - margin)


def mine_hardest(sim: Tensor, positive_mask: Tensor, margin: float) -> Tensor:
    allowed = negatives(positive_mask)
    return one_per_row(sim.masked_fill(~allowed, float("-inf")).argmax(dim=1), allowed)


BUILTIN_MINERS: dict[str, tuple[Miner, str]] = {
    "all": (mine_all, "every negative"),
    "semi_hard": (
        mine_semi_hard,
        "per anchor, the most similar negative less similar than the positive (else the least similar one)",
    ),
    "violating": (mine_violating, "negatives with a non-zero triplet term (hard and semi-hard)"),
    "hardest": (mine_hardest, "per anchor, the single most similar negative"),
}
