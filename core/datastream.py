"""The pre-training input pipeline: per-epoch batches of two augmented views, on the training device.

Three paths behind one interface (chosen from ``data.augment.backend`` and ``data.device_resident``):

- resident: the uint8 pre-training set lives on the device; indices are shuffled there and both views are made
  by :class:`~simclr.views.BatchedViews` — no DataLoader, no host round-trip;
- loader: a DataLoader brings uint8 batches to the device, where BatchedViews makes the views;
- cpu: per-image torchvision transforms run in DataLoader workers (:class:`~simclr.views.CPUViews`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, DistributedSampler

from simclr.data import ImageDataset
from simclr.errors import UserError
from simclr.runtime import Runtime
from simclr.schema import DataConfig
from simclr.views import BatchedViews, CPUViews, TwoViewDataset, resolve_views

log = logging.getLogger("simclr")

#: the resident path may use at most this fraction of the free GPU memory for the dataset
RESIDENT_MEMORY_FRACTION = 0.25


def _fits_on_device(images: torch.Tensor, device: torch.device) -> bool:
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return images.numel() * images.element_size() <= RESIDENT_MEMORY_FRACTION * free


def _materialize(split: torch.utils.data.Dataset, batch_size: int, num_workers: int) -> torch.Tensor:
    loader = DataLoader(split, batch_size=batch_size, num_workers=num_workers)
    return torch.cat([images for images, _ in loader])


class ViewStream:
    """Yields ``(view1, view2)`` float batches of this rank's share of the global batch."""

    def __init__(
        self,
        dataset: ImageDataset,
        cfg: DataConfig,
        runtime: Runtime,
        seed: int,
        normalisation: tuple[Sequence[float], Sequence[float]] | None = None,
    ):
        """``normalisation``: the (mean, std) the views are normalised with (default: the dataset's)."""
        self.runtime = runtime
        self.seed = seed
        self.split = dataset.pretrain_split()
        self.size = len(self.split)
        if cfg.batch_size % runtime.world_size:
            raise UserError(
                f"data.batch_size {cfg.batch_size} is not divisible by the {runtime.world_size} processes; "
                "the batch size is the global batch, split evenly across ranks"
            )
        if self.size < cfg.batch_size:
            raise UserError(
                f"data.batch_size {cfg.batch_size} is larger than the pre-training set ({self.size} images); "
                "lower data.batch_size"
            )
        self.global_batch = cfg.batch_size
        self.batch = cfg.batch_size // runtime.world_size
        self.num_workers = cfg.num_workers
        self.settings = resolve_views(cfg.augment, dataset, normalisation)
        self.generator = torch.Generator(device=runtime.device)
        self.generator.manual_seed(seed * 1_000_003 + runtime.rank)
        self.path = self._choose_path(dataset, cfg)
        if self.path == "cpu":
            self.pairs = TwoViewDataset(self.split, CPUViews(self.settings), seed)
        else:
            self.views = BatchedViews(self.settings)

    def _choose_path(self, dataset: ImageDataset, cfg: DataConfig) -> str:
        if cfg.augment.backend == "cpu":
            return "cpu"
        self.images: torch.Tensor | None = None
        if cfg.device_resident != "never":
            images = dataset.pretrain_tensor()
            if images is None and cfg.device_resident == "always":
                images = _materialize(self.split, 512, self.num_workers)
            if images is not None and (cfg.device_resident == "always" or _fits_on_device(images, self.runtime.device)):
                self.images = images.to(self.runtime.device)
                return "resident"
        return "loader"

    @property
    def steps_per_epoch(self) -> int:
        return self.size // self.global_batch

    def _prepare(self, view: torch.Tensor) -> torch.Tensor:
        return self.runtime.place(view)

    def _views(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both views of a uint8 batch already on the device, in one pass of the batched augmentation."""
        view1, view2 = self.views.pair(images, self.generator)
        return self._prepare(view1), self._prepare(view2)

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of epoch ``epoch`` (0-based), skipping the first ``start_step`` (when resuming mid-epoch)."""
        if self.path == "resident":
            yield from self._resident_epoch(epoch, start_step)
            return
        sampler = DistributedSampler(
            self.split,
            num_replicas=self.runtime.world_size,
            rank=self.runtime.rank,
            shuffle=True,
            seed=self.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        # a resumed epoch starts at its next batch: the skipped ones are never loaded
        indices = list(sampler)[start_step * self.batch : self.steps_per_epoch * self.batch]
        if self.path == "cpu":
            self.pairs.set_epoch(epoch)
        loader = DataLoader(
            self.pairs if self.path == "cpu" else self.split,
            batch_size=self.batch,
            sampler=indices,
            drop_last=True,
            num_workers=self.num_workers,
            pin_memory=self.runtime.device.type == "cuda",
            persistent_workers=False,
            # the loader's own seed comes from here, not from the global RNG, which must stay identical on
            # every rank and must not depend on where a resumed run picked up
            generator=torch.Generator().manual_seed(self.seed + epoch),
        )
        for batch in loader:
            if self.path == "cpu":
                yield self._prepare(batch[0]), self._prepare(batch[1])
            else:
                yield self._views(batch[0].to(self.runtime.device, non_blocking=True))

    def _resident_epoch(self, epoch: int, start_step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        shuffle = torch.Generator(device=self.runtime.device)
        shuffle.manual_seed(self.seed + epoch)
        order = torch.randperm(self.size, generator=shuffle, device=self.runtime.device)
        usable = self.steps_per_epoch * self.global_batch
        mine = order[:usable][self.runtime.rank :: self.runtime.world_size]
        for step in range(start_step, self.steps_per_epoch):
            yield self._views(self.images[mine[step * self.batch : (step + 1) * self.batch]])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "device": self.generator.device.type}

    def load_state_dict(self, state: dict) -> None:
        """Continue the saved view stream; one saved on another kind of device (a run started on a CPU and
        resumed on a GPU) cannot be, so the stream is reseeded from the saved state: deterministic, but the
        views from here on differ from an uninterrupted run's."""
        here = self.generator.device.type
        if state.get("device", here) == here:
            try:
                self.generator.set_state(state["generator"])
                return
            except RuntimeError:  # another device's state, in a checkpoint that did not say where it came from
                pass
        log.warning(
            "the checkpoint's view stream was drawn on %s, this run's is on %s: the views continue from a new "
            "stream (seeded from the saved one)",
            state.get("device", "another kind of device"),
            here,
        )
        digest = hashlib.blake2b(state["generator"].numpy().tobytes(), digest_size=7).digest()
        self.generator.manual_seed(int.from_bytes(digest, "little") + self.runtime.rank)
