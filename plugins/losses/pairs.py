"""What every contrastive loss here shares: the float32 similarity matrix of z = [z1; z2], the positive and
negative masks, and the common diagnostics.

Row i of z (2N rows) has the positive p(i) = (i + N) mod 2N and the negatives k not in {i, p(i)}. Nothing here
reads a value back to the host, so a loss step never forces a device sync.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import simclr


@dataclass(frozen=True)
class Pairs:
    """Index structure of a batch of 2N rows: ``positive`` [2N] (p(i)), and the [2N, 2N] bool masks
    ``eye`` (i = k), ``positive_mask`` (k = p(i)) and ``negative_mask`` (every other k)."""

    n: int
    positive: Tensor
    eye: Tensor
    positive_mask: Tensor
    negative_mask: Tensor

    @classmethod
    def build(cls, n: int, device: torch.device) -> Pairs:
        rows = torch.arange(2 * n, device=device)
        positive = (rows + n) % (2 * n)
        eye = rows[:, None] == rows[None, :]
        positive_mask = rows[None, :] == positive[:, None]
        return cls(n, positive, eye, positive_mask, ~(eye | positive_mask))

    @property
    def num_negatives(self) -> int:
        """Negative pairs in the batch: 2N rows times 2N - 2 negatives."""
        return 2 * self.n * (2 * self.n - 2)


def check_batch(z1: Tensor, z2: Tensor) -> int:
    """N, after checking that z1 and z2 are two [N, D] views with N >= 2."""
    if z1.dim() != 2 or z1.shape != z2.shape:
        raise simclr.UserError(
            f"a contrastive loss takes two projections of the same shape [N, D]; got {tuple(z1.shape)} and "
            f"{tuple(z2.shape)}."
        )
    n = z1.shape[0]
    if n < 2:
        raise simclr.UserError(
            f"a contrastive loss needs a batch of at least 2 images (each image's negatives are the other "
            f"images of the batch); got a batch of {n}. Use data.batch_size >= 2."
        )
    return n


def similarity(z1: Tensor, z2: Tensor) -> Tensor:
    """Cosine similarities s_ij of the rows of [z1; z2], in float32 (call with autocast off)."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    return z @ z.T


def diagnostics(sim: Tensor, pairs: Pairs) -> dict[str, Tensor]:
    """pos_top1: fraction of rows whose positive is their most similar candidate; pos_sim / neg_sim: mean
    cosine similarity of the positive / negative pairs. Detached 0-dim float32 tensors on sim's device."""
    with torch.no_grad():
        candidates = sim.masked_fill(pairs.eye, float("-inf"))
        top1 = (candidates.argmax(dim=1) == pairs.positive).float().mean()
        pos_sim = sim.gather(1, pairs.positive[:, None]).mean()
        neg_sim = torch.where(pairs.negative_mask, sim, 0.0).sum() / pairs.num_negatives
    return {"pos_top1": top1, "pos_sim": pos_sim, "neg_sim": neg_sim}


class PairLoss(nn.Module):
    """Base of the losses: ``forward(z1, z2)`` checks the batch, turns autocast off, builds the float32
    similarity matrix and calls :meth:`pair_loss`. ``diagnostics`` holds the last forward's diagnostics."""

    def __init__(self) -> None:
        super().__init__()
        self.diagnostics: dict[str, Tensor] = {}
        self._pairs: dict[tuple[int, torch.device], Pairs] = {}

    def pairs(self, n: int, device: torch.device) -> Pairs:
        """The index and masks of a batch of ``n`` pairs, built once per batch size and device (the step's
        batch size is fixed, so this is one construction per run, not one per step)."""
        key = (n, device)
        if key not in self._pairs:
            self._pairs[key] = Pairs.build(n, device)
        return self._pairs[key]

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        n = check_batch(z1, z2)
        with torch.autocast(device_type=z1.device.type, enabled=False):
            sim = similarity(z1, z2)
            pairs = self.pairs(n, sim.device)
            loss, extra = self.pair_loss(sim, pairs)
            self.diagnostics = {**diagnostics(sim, pairs), **extra}
        return loss

    def pair_loss(self, sim: Tensor, pairs: Pairs) -> tuple[Tensor, dict[str, Tensor]]:
        """The scalar loss from the [2N, 2N] similarity matrix, and any extra diagnostics (detached)."""
        raise NotImplementedError
