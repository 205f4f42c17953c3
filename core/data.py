"""The dataset contract, what a dataset plugin's factory returns, and helpers for datasets held in memory."""

from __future__ import annotations

import abc
import functools
from typing import Any

import torch
from torch.utils.data import Dataset

from simclr import component_label
from simclr.errors import PluginError
from simclr.fingerprint import tensors_fingerprint

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageDataset(abc.ABC):
    """A dataset for SimCLR: an unlabelled pre-training split and (optionally) labelled evaluation splits.

    Every split is a ``torch.utils.data.Dataset`` whose items are ``(image, label)``: ``image`` a uint8 tensor
    ``[3, image_size, image_size]`` and ``label`` an int (-1 where unknown). Views and evaluation transforms are
    made from these uint8 images by the core, so every dataset feeds every augmentation backend.

    A factory that cannot find its files raises :class:`simclr.UserError` saying which files it expected where.
    """

    #: side length in pixels of every image the splits return
    image_size: int
    #: class names of the labelled splits, index = label
    class_names: list[str]
    #: per-channel mean and std used to normalise images scaled to [0, 1]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def augment_defaults(self) -> dict[str, Any]:
        """Defaults for the ``data.augment`` fields the user left unset (e.g. CIFAR: jitter 0.5, no blur)."""
        return {}

    @abc.abstractmethod
    def pretrain_split(self) -> Dataset:
        """The images SimCLR trains on (labels not needed)."""

    def eval_splits(self) -> tuple[Dataset, Dataset] | None:
        """Labelled (train, test) splits for linear evaluation, or None when the dataset has no labels."""
        return None

    def eval_fingerprint(self) -> str | None:
        """A hash of the labelled splits' images and labels, which cached evaluation features are keyed by, so
        files added to or changed in the labelled data are never evaluated on stale features. The default hashes
        splits held in memory as :class:`TensorSplit`; a dataset with other splits may return its own hash, and
        None (the default for such splits) keys the cache by the dataset's settings alone."""
        splits = self.eval_splits()
        if splits is None or not all(isinstance(split, TensorSplit) for split in splits):
            return None
        train, test = splits
        return tensors_fingerprint(
            {
                "train_images": train.images,
                "train_labels": train.labels,
                "test_images": test.images,
                "test_labels": test.labels,
            }
        )

    def pretrain_tensor(self) -> torch.Tensor | None:
        """The whole pre-training split as one uint8 tensor [N, 3, S, S] when it is already in memory
        (lets the engine put it on the GPU without a pass through a DataLoader); None otherwise."""
        return None


def check_split_images(dataset: ImageDataset, split: Dataset, which: str, name: str) -> None:
    """Raise :class:`simclr.PluginError` when ``split``'s first image breaks the dataset contract (uint8
    ``[3, image_size, image_size]``): a wrong ``image_size`` or layout would otherwise fail far from its cause,
    or not at all. Called where a split is first used, so a lazily loaded split is not loaded for nothing."""
    size = dataset.image_size
    if len(split) == 0:
        return
    image = split[0][0]
    if isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and tuple(image.shape) == (3, size, size):
        return
    found = f"{image.dtype} {list(image.shape)}" if isinstance(image, torch.Tensor) else type(image).__name__
    raise PluginError(
        f"{component_label('dataset', name)} ({type(dataset).__name__}): the images of its {which} split are "
        f"{found}, but with image_size {size} they must be uint8 [3, {size}, {size}]"
    )


class TensorSplit(Dataset):
    """A split held in memory: items are ``(uint8 image [3, S, S], int label)``, label -1 where unknown."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, S, S], got {images.dtype} {tuple(images.shape)}")
        if labels is None:
            labels = torch.full((len(images),), -1, dtype=torch.int64)
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels.to(torch.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and std of uint8 images [N, 3, S, S] scaled to [0, 1].

    Computed exactly from per-channel histograms of the 256 pixel values (no float copy of the data); the std
    is floored at 1e-3 so a flat dataset still normalises to finite values.
    """
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in range(3):
        counts = torch.bincount(images[:, channel].reshape(-1), minlength=256).double()
        counts /= counts.sum()
        mean = (counts * values).sum()
        means.append(float(mean))
        stds.append(max(float((counts * (values - mean) ** 2).sum().sqrt()), 1e-3))
    return (means[0], means[1], means[2]), (stds[0], stds[1], stds[2])


class LazyStatsImageDataset(ImageDataset):
    """An ImageDataset whose splits load on first use: mean and std are computed when first asked for, from the
    images :meth:`stats_images` gives (an evaluation, which normalises as the checkpoint says, never loads them)."""

    @abc.abstractmethod
    def stats_images(self) -> torch.Tensor:
        """The uint8 images [N, 3, S, S] the normalisation statistics come from."""

    @functools.cached_property
    def _stats(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        return channel_stats(self.stats_images())

    @property
    def mean(self) -> tuple[float, float, float]:  # type: ignore[override]
        return self._stats[0]

    @property
    def std(self) -> tuple[float, float, float]:  # type: ignore[override]
        return self._stats[1]


class InMemoryImageDataset(ImageDataset):
    """An ImageDataset whose splits are :class:`TensorSplit` objects in memory: pass the pre-training split
    and, for a labelled dataset, the (train, test) evaluation splits. ``mean`` and ``std`` come from the
    pre-training images; ``pretrain_tensor`` lets the engine put them on the GPU as they are."""

    def __init__(self, pretrain: TensorSplit, eval_splits: tuple[TensorSplit, TensorSplit] | None = None):
        self.pretrain = pretrain
        self.eval = eval_splits
        self.mean, self.std = channel_stats(pretrain.images)

    def pretrain_split(self) -> TensorSplit:
        return self.pretrain

    def eval_splits(self) -> tuple[TensorSplit, TensorSplit] | None:
        return self.eval

    def pretrain_tensor(self) -> torch.Tensor:
        return self.pretrain.images
