"""A user's own images: a folder (nested or not) to pre-train on, and optional class-per-subfolder folders to
evaluate on. Every image is decoded, resized and centre-cropped once, when its folder is first read (before
training starts), so a broken file is found then (and skipped) rather than in the middle of an epoch."""

from __future__ import annotations

import logging
import os
import unicodedata
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

import simclr
from simclr.data import LazyStatsImageDataset, TensorSplit
from simclr.plugins.datasets.params import ImageFolderParams

log = logging.getLogger("simclr")


def _check_folder(folder: Path, field: str) -> None:
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "not there: no such folder"
        raise simclr.UserError(
            f"image_folder: data.dataset.{field} is {folder}, which is {what} ({folder.resolve()}); fix the path "
            f"(a relative one is relative to the folder simclr runs in; for a run's stored config, give it with "
            f"--set data.dataset.{field}=PATH)"
        )


def _files(folder: Path, field: str) -> list[Path]:
    """Every non-hidden file below ``folder``, in a fixed order, following links to folders (as class folders
    given as links are) but entering each real folder once, so a link loop ends."""
    _check_folder(folder, field)
    found = []
    entered = {os.path.realpath(folder)}
    for parent, dirs, names in os.walk(folder, followlinks=True):
        subfolders = []
        for name in sorted(d for d in dirs if not d.startswith(".")):
            real = os.path.realpath(os.path.join(parent, name))
            if real not in entered:
                entered.add(real)
                subfolders.append(name)
        dirs[:] = subfolders
        found += [Path(parent) / name for name in sorted(names) if not name.startswith(".")]
    return found


#: PIL's modes of 16-bit greyscale images (PNG, TIFF; some PIL versions read them as 32-bit "I")
SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def _to_rgb(image: Image.Image, bit_depth: int) -> tuple[Image.Image, int | None]:
    """8-bit RGB, and a 16-bit image's brightest value (None for other images). A 16-bit greyscale image is scaled
    down (2**bit_depth - 1 -> 255) rather than clipped at 255, which is what PIL's own conversion does and which
    turns most of such an image white; a float one (mode F) with values in [0, 1] is scaled up, rather than read
    as 0-255 and turned black."""
    brightest = None
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        brightest = int(values.max()) if values.size else 0
        values = values * (255 / (2**bit_depth - 1))
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    elif image.mode == "F":
        # a NaN or infinite pixel is 0, rather than a reason to read the whole image as 0-255
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        values = values * 255 if values.size and values.max() <= 1.0 else values
        image = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))
    return image.convert("RGB"), brightest


#: why a file was skipped, as the warning says it
NOT_AN_IMAGE = "not images (no format PIL recognises)"
DAMAGED = "damaged images (a format PIL recognises, but truncated or corrupt)"
TOO_LARGE = "too large for PIL (over twice Image.MAX_IMAGE_PIXELS, its guard against decompression bombs)"
OUTSIDE_CLASSES = "outside a class folder"


def _decode(path: Path, size: int, bit_depth: int) -> tuple[np.ndarray, int | None] | str:
    """The image at ``path`` as uint8 [size, size, 3] (resized, centre-cropped) with a 16-bit image's brightest
    value (else None), or why it cannot be read."""
    try:
        with Image.open(path) as image:
            limit = Image.MAX_IMAGE_PIXELS  # None turns PIL's guard off
            if limit is not None and image.width * image.height > limit:  # PIL's own warning names no file
                log.warning(
                    "image_folder: %s has %d pixels, more than PIL's decompression-bomb threshold "
                    "(Image.MAX_IMAGE_PIXELS, %d): read anyway, slowly; a smaller copy reads faster",
                    path,
                    image.width * image.height,
                    limit,
                )
            image.draft("RGB", (size, size))  # JPEG: the decoder downscales (up to 8x) while decoding
            image, brightest = _to_rgb(ImageOps.exif_transpose(image), bit_depth)
            scale = size / min(image.size)
            target = (max(size, round(image.width * scale)), max(size, round(image.height * scale)))
            image = image.resize(target, Image.Resampling.BILINEAR)
            left, top = (image.width - size) // 2, (image.height - size) // 2
            return np.asarray(image.crop((left, top, left + size, top + size))), brightest
    except Image.DecompressionBombError:
        return TOO_LARGE
    except UnidentifiedImageError:  # a text file, Thumbs.db, an empty file
        return NOT_AN_IMAGE
    except Exception:  # any other failure to decode (a truncated download, a corrupt file) is skipped too
        return DAMAGED


#: how many skipped files a warning names, per reason: every damaged image (up to this many), as those are the
#: ones to look at; a few examples of the others
NAMED_DAMAGED = 20
NAMED_OTHERS = 3


class _Reader:
    """Decodes files in parallel (PIL releases the GIL) and reports, once, those it had to skip and why, and 16-bit
    images that read dark because they hold fewer significant bits than ``bit_depth`` says. ``where`` names the
    folders read, as the warnings say it."""

    def __init__(self, size: int, bit_depth: int, where: str):
        self.size = size
        self.bit_depth = bit_depth
        self.where = where
        self.skipped: dict[str, list[Path]] = {}
        #: the brightest value of every 16-bit image read
        self.sixteen_bit: list[int] = []

    def skip(self, paths: list[Path], why: str) -> None:
        if paths:
            self.skipped.setdefault(why, []).extend(paths)

    def read(self, paths: list[Path], labels: list[int], folder: Path) -> TensorSplit:
        # the filters are global: the worker threads see this one (and only this thread changes them)
        with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            decoded = list(pool.map(lambda path: _decode(path, self.size, self.bit_depth), paths))
        kept = [i for i, result in enumerate(decoded) if not isinstance(result, str)]
        for path, result in zip(paths, decoded, strict=True):
            if isinstance(result, str):
                self.skip([path], result)
            elif result[1] is not None:
                self.sixteen_bit.append(result[1])
        if not kept:
            raise simclr.UserError(
                f"image_folder: no readable images in {folder.resolve()} ({len(paths)} files looked at)"
            )
        arrays = [decoded[i][0] for i in kept]  # type: ignore[index]
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return TensorSplit(images, torch.tensor([labels[i] for i in kept], dtype=torch.int64))

    def warn(self) -> None:
        """Say what was skipped, and that 16-bit images with fewer significant bits than bit_depth read dark."""
        if self.skipped:
            reasons = "; ".join(_skipped(why, files) for why, files in self.skipped.items())
            log.warning(
                "image_folder: %s: skipped %d files: %s", self.where, sum(map(len, self.skipped.values())), reasons
            )
        brightest = max(self.sixteen_bit, default=None)
        white = 2**self.bit_depth - 1
        images = f"{len(self.sixteen_bit)} 16-bit image{'s' if len(self.sixteen_bit) > 1 else ''}"
        if brightest is not None and brightest > white:
            clipped = sum(value > white for value in self.sixteen_bit)
            log.warning(
                "image_folder: %s: %d of the %s have values above %d, the white of bit_depth %d (up to %d): they "
                "are clipped white; set data.dataset.bit_depth: %d (or more) to keep them",
                self.where,
                clipped,
                images,
                white,
                self.bit_depth,
                brightest,
                min(brightest.bit_length(), 16),
            )
        elif brightest is not None and 0 < brightest < 2 ** (self.bit_depth - 2):
            log.warning(
                "image_folder: %s: the %s use values up to %d only, of the %d that bit_depth %d makes white, so "
                "they read dark (at most %d of 255); if they hold %d-bit data, set data.dataset.bit_depth: %d",
                self.where,
                images,
                brightest,
                white,
                self.bit_depth,
                round(brightest * 255 / white),
                brightest.bit_length(),
                brightest.bit_length(),
            )


def _skipped(why: str, files: list[Path]) -> str:
    """``3 damaged images (a, b, c)``, ``40 not images (...) (e.g. a, b, c)``."""
    if why == DAMAGED:
        more = f" and {len(files) - NAMED_DAMAGED} more" if len(files) > NAMED_DAMAGED else ""
        return f"{len(files)} {why} ({', '.join(map(str, files[:NAMED_DAMAGED]))}{more})"
    return f"{len(files)} {why} (e.g. {', '.join(map(str, files[:NAMED_OTHERS]))})"


def _labelled(
    folder: Path, field: str, class_names: list[str] | None
) -> tuple[list[Path], list[int], list[str], list[Path]]:
    """Files of a class-per-subfolder folder with their labels; the class names; files outside any class."""
    _check_folder(folder, field)
    # by the names' NFC form: macOS writes "café" decomposed (NFD), most other systems composed
    on_disk: dict[str, str] = {}
    for child in sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        name = unicodedata.normalize("NFC", child)
        if name in on_disk:
            raise simclr.UserError(
                f"image_folder: {folder.resolve()} has two class folders named {name!r}, one written in another "
                "Unicode form (composed and decomposed accents); merge them into one"
            )
        on_disk[name] = child
    if not on_disk:
        raise simclr.UserError(
            f"image_folder: data.dataset.{field} ({folder.resolve()}) has no class folders; labelled images go "
            f"in {field}/<class name>/<images>"
        )
    if class_names is None:
        class_names = sorted(on_disk)
    unknown = sorted(set(on_disk) - set(class_names))
    empty = [name for name in unknown if not _files(folder / on_disk[name], field)]
    if empty:
        log.warning("image_folder: %s: class folders %s are empty and eval_train has no such class", folder, empty)
    unknown = [name for name in unknown if name not in empty]
    if unknown:
        raise simclr.UserError(
            f"image_folder: {folder.resolve()} has class folders {unknown} that eval_train does not have; a probe "
            "can only be tested on classes it was trained on: add them to eval_train or remove them"
        )
    paths, labels = [], []
    for label, name in enumerate(class_names):
        if name in on_disk:
            found = _files(folder / on_disk[name], field)
            paths += found
            labels += [label] * len(found)
    loose = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return paths, labels, class_names, loose


def _check_classes(
    class_names: list[str], splits: tuple[TensorSplit, TensorSplit], train_folder: Path, test_folder: Path
) -> None:
    """A class without readable training images cannot be learnt: an error; one without test images is only
    not measured: a warning."""
    train, test = (torch.bincount(split.labels, minlength=len(class_names)).tolist() for split in splits)
    empty = [name for name, count in zip(class_names, train, strict=True) if count == 0]
    if empty:
        raise simclr.UserError(
            f"image_folder: class folders {empty} of {train_folder.resolve()} hold no readable images; "
            "add images to them or remove them"
        )
    untested = [name for name, count in zip(class_names, test, strict=True) if count == 0]
    if untested:
        log.warning(
            "image_folder: %s has no images of classes %s: the probes are trained on them but not tested",
            test_folder.resolve(),
            untested,
        )


def _warn_of_shared_images(train: list[Path], test: list[Path]) -> None:
    """Test images that are also training images (the same folder given twice, say) make the probes look better
    than they are: warned about, as a deliberate check of the probe's fit is still possible."""
    shared = {os.path.realpath(path) for path in train} & {os.path.realpath(path) for path in test}
    if shared:
        log.warning(
            "image_folder: %d of the %d eval_test images are eval_train images too (e.g. %s): the probes are tested "
            "on images they were trained on, so their accuracies overstate",
            len(shared),
            len(test),
            sorted(shared)[0],
        )


class ImageFolderDataset(LazyStatsImageDataset):
    """Pre-trains on every readable image below ``train``; evaluates on ``eval_train`` / ``eval_test`` when
    given. mean and std come from the pre-training images. Each folder is read when it is first used: an
    evaluation (which normalises as the checkpoint says) needs only the labelled folders, as on a laptop that
    evaluates a run trained elsewhere, and training reads ``train`` first, so a mistyped path is reported before
    the labelled images are decoded."""

    def __init__(self, params: ImageFolderParams):
        self.params = params
        self.image_size = params.image_size

    @cached_property
    def labelled(self) -> tuple[list[str], tuple[TensorSplit, TensorSplit] | None]:
        """The class names and the (train, test) splits of the labelled folders; none without them."""
        params = self.params
        if params.eval_train is None or params.eval_test is None:
            return [], None
        reader = _Reader(
            params.image_size, params.bit_depth, f"eval_train {params.eval_train}, eval_test {params.eval_test}"
        )
        eval_paths, labels, class_names, loose = _labelled(params.eval_train, "eval_train", None)
        reader.skip(loose, OUTSIDE_CLASSES)
        eval_train = reader.read(eval_paths, labels, params.eval_train)
        paths, labels, _, loose = _labelled(params.eval_test, "eval_test", class_names)
        reader.skip(loose, OUTSIDE_CLASSES)
        _warn_of_shared_images(eval_paths, paths)
        splits = (eval_train, reader.read(paths, labels, params.eval_test))
        _check_classes(class_names, splits, params.eval_train, params.eval_test)
        reader.warn()
        return class_names, splits

    @property
    def class_names(self) -> list[str]:
        return self.labelled[0]

    @cached_property
    def pretrain(self) -> TensorSplit:
        if self.params.train is None:
            raise simclr.UserError(
                "image_folder: data.dataset.train is not given; pre-training needs a folder of images "
                "(--set data.dataset.train=PATH)"
            )
        reader = _Reader(self.params.image_size, self.params.bit_depth, f"train {self.params.train}")
        paths = _files(self.params.train, "train")
        split = reader.read(paths, [-1] * len(paths), self.params.train)
        reader.warn()
        return split

    def stats_images(self) -> torch.Tensor:
        return self.pretrain.images

    def pretrain_split(self) -> TensorSplit:
        return self.pretrain

    def eval_splits(self) -> tuple[TensorSplit, TensorSplit] | None:
        return self.labelled[1]

    def pretrain_tensor(self) -> torch.Tensor:
        return self.pretrain.images
