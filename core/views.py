"""SimCLR views: the random augmentation that makes two views of every image.

The pipeline (per image, independently for each view): random resized crop -> horizontal flip -> colour jitter
(brightness, contrast, saturation, hue in a random order, applied with probability ``jitter_p``) -> random
grayscale -> Gaussian blur (optional) -> normalise. Two implementations share one :class:`ViewSettings`:

- :class:`BatchedViews` augments a whole uint8 batch on whatever device it lives on, with per-sample random
  parameters and no host synchronisation: the crop and flip are one batched affine ``grid_sample``, each
  jitter step is a per-sample 3x3 colour matrix, the blur is a grouped separable convolution.
- :class:`CPUViews` runs torchvision's transforms image by image, in DataLoader workers.

Both follow torchvision's definitions (``RandomResizedCrop.get_params``, ``ColorJitter`` with its random
order of the four adjustments and a clamp after each, the HSV hue shift, ``rgb_to_grayscale``,
``GaussianBlur``); the batched path differs only in that its crop boxes are continuous rather than rounded to
whole pixels, and in that it stays in float where torchvision rounds the crop to uint8.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch.utils.data import Dataset

from simclr.data import ImageDataset
from simclr.errors import PluginError
from simclr.schema import AugmentConfig

#: luma weights of torchvision's rgb_to_grayscale
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
#: the paper's values for the fields a config and a dataset may leave unset
PAPER_CROP_SCALE = (0.08, 1.0)
PAPER_JITTER_STRENGTH = 1.0
CROP_ATTEMPTS = 10


@dataclass(frozen=True)
class ViewSettings:
    """Every knob of the view pipeline, resolved to a concrete value."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_scale: tuple[float, float]
    crop_ratio: tuple[float, float]
    flip_p: float
    jitter_strength: float
    jitter_p: float
    grayscale_p: float
    blur: bool
    blur_p: float
    blur_kernel_size: int
    blur_sigma: tuple[float, float]

    @property
    def jitter(self) -> tuple[float, float, float, float]:
        """torchvision ColorJitter's (brightness, contrast, saturation, hue): 0.8 s, 0.8 s, 0.8 s, 0.2 s (hue
        capped at 0.5, a half turn)."""
        s = self.jitter_strength
        return 0.8 * s, 0.8 * s, 0.8 * s, min(0.2 * s, 0.5)


def blur_kernel_size(image_size: int, fraction: float) -> int:
    """Odd kernel size of about ``fraction`` of the image (as in the SimCLR code), at least 3."""
    return max(3, int(fraction * image_size) // 2 * 2 + 1)


def resolve_views(
    cfg: AugmentConfig, dataset: ImageDataset, normalisation: tuple[Sequence[float], Sequence[float]] | None = None
) -> ViewSettings:
    """Fill the fields ``cfg`` leaves unset (None) from ``dataset.augment_defaults()``, then from the paper
    (crop scale (0.08, 1), jitter strength 1.0, blur on for images larger than 32 px). ``normalisation``: the
    (mean, std) the views are normalised with (default: the dataset's)."""
    defaults = dataset.augment_defaults()
    where = f"{type(dataset).__name__}.augment_defaults() returned {defaults!r}"
    optional = sorted(name for name, field in AugmentConfig.model_fields.items() if field.default is None)
    others = sorted(set(defaults) - set(optional))
    if others:
        raise PluginError(
            f"{where}: {others} are not fields a config may leave unset; a dataset may only set {optional}"
        )
    try:
        dataset_cfg = AugmentConfig.model_validate(defaults)
    except ValidationError as exc:
        from simclr.config import validation_issues

        raise PluginError(f"{where}: {'; '.join(map(str, validation_issues(exc)))}") from None

    def pick(field: str, paper: object) -> object:
        for source in (cfg, dataset_cfg):
            if getattr(source, field) is not None:
                return getattr(source, field)
        return paper

    size = dataset.image_size
    mean, std = normalisation or (dataset.mean, dataset.std)
    return ViewSettings(
        image_size=size,
        mean=tuple(mean),
        std=tuple(std),
        crop_scale=tuple(pick("crop_scale", PAPER_CROP_SCALE)),
        crop_ratio=tuple(cfg.crop_ratio),
        flip_p=cfg.flip_p,
        jitter_strength=pick("jitter_strength", PAPER_JITTER_STRENGTH),
        jitter_p=cfg.jitter_p,
        grayscale_p=cfg.grayscale_p,
        blur=pick("blur", size > 32),
        blur_p=cfg.blur_p,
        blur_kernel_size=blur_kernel_size(size, cfg.blur_kernel_fraction),
        blur_sigma=tuple(cfg.blur_sigma),
    )


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """The evaluation transform: uint8 images [..., 3, H, W] -> float, scaled to [0, 1], normalised."""
    mean_t = torch.tensor(mean, device=images.device).view(3, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(3, 1, 1)
    return images.float().div_(255).sub_(mean_t).div_(std_t)


@dataclass(frozen=True)
class ViewParams:
    """The random parameters of one view of each of B images (all tensors on one device)."""

    box: torch.Tensor  # [B, 4] crop x0, y0, width, height as fractions of the image side
    flip: torch.Tensor  # [B] bool
    jitter: torch.Tensor  # [B, 4] brightness, contrast, saturation factors, hue shift; (1, 1, 1, 0): none
    order: torch.Tensor  # [B, 4] permutation of (brightness, contrast, saturation, hue)
    gray: torch.Tensor  # [B] bool
    blur: torch.Tensor  # [B] bool
    sigma: torch.Tensor  # [B] blur sigma in pixels


def _mix(matrix: torch.Tensor, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample colour map: ``matrix`` [B, 3, 3] times every pixel of ``x`` [B, 3, H, W], plus ``offset``
    [B] (the same for the three channels). One batched matmul: faster on CPU than einsum or broadcasting."""
    batch, channels, height, width = x.shape
    pixels = x.reshape(batch, channels, height * width)
    if offset is None:
        mixed = torch.bmm(matrix, pixels)
    else:
        mixed = torch.baddbmm(offset.view(-1, 1, 1).expand(batch, channels, 1), matrix, pixels)
    return mixed.view(batch, channels, height, width)


def _hue_shift(x: torch.Tensor, shift: torch.Tensor, const: _Constants) -> torch.Tensor:
    """torchvision's adjust_hue for every sample at once: turn each pixel's HSV hue by ``shift`` [B] turns,
    keeping its value (max channel) and chroma (max - min)."""
    red, green, blue = x.unbind(1)
    high, low = x.amax(dim=1), x.amin(dim=1)
    chroma = high - low
    # hue in sixths of a turn, from the largest channel (red first, then green, as torchvision breaks ties)
    hue = torch.where(
        red == high,
        green - blue,
        torch.where(green == high, (blue - red).add_(chroma, alpha=2), (red - green).add_(chroma, alpha=4)),
    )
    hue = hue.div_(torch.where(chroma > 0, chroma, torch.ones_like(chroma))).add_(6 * shift.view(-1, 1, 1))
    hue = hue.sub_(torch.floor(hue / 6).mul_(6)).unsqueeze(1)
    pure = (hue - const.hue_centre).abs_().mul_(const.hue_slope).add_(const.hue_offset).clamp_(0, 1)
    return pure.mul_(chroma.unsqueeze(1)).add_(low.unsqueeze(1))


class _Constants:
    """Per-device constant tensors (made once, so a call copies nothing from the host)."""

    def __init__(self, settings: ViewSettings, device: torch.device):
        # HSV -> RGB: channel c of a pure hue h (in sixths of a turn) is clamp(slope * |h - centre| + offset)
        self.hue_slope = torch.tensor([1.0, -1.0, -1.0], device=device).view(1, 3, 1, 1)
        self.hue_centre = torch.tensor([3.0, 2.0, 4.0], device=device).view(1, 3, 1, 1)
        self.hue_offset = torch.tensor([-1.0, 2.0, 2.0], device=device).view(1, 3, 1, 1)
        self.no_jitter = torch.tensor([1.0, 1.0, 1.0, 0.0], device=device)
        self.gray = torch.tensor(GRAY_WEIGHTS, device=device)
        self.eye = torch.eye(3, device=device)
        self.to_gray = self.gray.expand(3, 3)  # every output channel = luma
        self.mean = torch.tensor(settings.mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(settings.std, device=device).view(1, 3, 1, 1)
        half = settings.blur_kernel_size // 2
        self.taps = torch.arange(-half, half + 1, device=device, dtype=torch.float32)


class BatchedViews:
    """One random view of every image of a uint8 batch, made on the batch's device.

    Every sample draws its own crop box and aspect, flip, jitter factors and order, grayscale and blur sigma
    from ``generator`` (which must live on the images' device; None: the default generator). Nothing reads a
    tensor value back to the host. Use :meth:`pair` for the two views of a batch.
    """

    def __init__(self, settings: ViewSettings):
        self.settings = settings
        self._constants: dict[torch.device, _Constants] = {}

    def _const(self, device: torch.device) -> _Constants:
        if device not in self._constants:
            self._constants[device] = _Constants(self.settings, device)
        return self._constants[device]

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 [B, 3, S, S] -> normalised float32 [B, 3, S, S], one view per image."""
        return self.apply(images, self.sample_params(len(images), generator, images.device))

    def pair(self, images: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independent views of every image, made in one pass over a doubled batch."""
        return self(torch.cat([images, images]), generator).chunk(2)

    def sample_params(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> ViewParams:
        """Draw the random parameters of ``batch`` views."""
        s = self.settings
        if device is None:
            device = generator.device if generator is not None else torch.device("cpu")

        def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            u = torch.rand(batch, *shape, generator=generator, device=device)
            return u.mul_(high - low).add_(low)

        # RandomResizedCrop.get_params for a square image: the first of 10 (area, aspect) draws that fits,
        # else the whole image (aspect clamped to the allowed range)
        area = uniform(*s.crop_scale, CROP_ATTEMPTS)
        aspect = uniform(math.log(s.crop_ratio[0]), math.log(s.crop_ratio[1]), CROP_ATTEMPTS).exp_()
        width, height = (area * aspect).sqrt_(), (area / aspect).sqrt_()
        fits = (width <= 1) & (height <= 1)
        first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)
        fallback = min(max(1.0, s.crop_ratio[0]), s.crop_ratio[1])
        any_fits = fits.any(dim=1)
        width = torch.where(any_fits, width.gather(1, first).squeeze(1), min(1.0, fallback))
        height = torch.where(any_fits, height.gather(1, first).squeeze(1), min(1.0, 1 / fallback))
        corner = uniform(0.0, 1.0, 2)
        x0 = torch.where(any_fits, corner[:, 0] * (1 - width), (1 - width) / 2)
        y0 = torch.where(any_fits, corner[:, 1] * (1 - height), (1 - height) / 2)
        flip = uniform(0.0, 1.0) < s.flip_p

        b, c, sat, h = s.jitter
        factors = torch.stack(
            [
                uniform(max(0.0, 1 - b), 1 + b),
                uniform(max(0.0, 1 - c), 1 + c),
                uniform(max(0.0, 1 - sat), 1 + sat),
                uniform(-h, h),
            ],
            dim=1,
        )
        jittered = uniform(0.0, 1.0) < s.jitter_p
        order = uniform(0.0, 1.0, 4).argsort(dim=1)
        gray = uniform(0.0, 1.0) < s.grayscale_p
        blur = uniform(0.0, 1.0) < (s.blur_p if s.blur else 0.0)
        sigma = uniform(*s.blur_sigma)
        return ViewParams(
            box=torch.stack([x0, y0, width, height], dim=1),
            flip=flip,
            jitter=torch.where(jittered[:, None], factors, self._const(torch.device(device)).no_jitter),
            order=order,
            gray=gray,
            blur=blur,
            sigma=sigma,
        )

    def apply(self, images: torch.Tensor, params: ViewParams) -> torch.Tensor:
        """Make the views of ``images`` (uint8 [B, 3, S, S]) with the given parameters, in float32 even when
        called under autocast."""
        const = self._const(images.device)
        s = self.settings
        with torch.autocast(images.device.type, enabled=False):
            x = self._crop(images.float().div_(255), params)
            if s.jitter_p > 0 and s.jitter_strength > 0:
                x = self._jitter(x, params, const)
            if s.grayscale_p > 0:
                x = _mix(torch.where(params.gray.view(-1, 1, 1), const.to_gray, const.eye), x)
            if s.blur and s.blur_p > 0:
                x = self._blur(x, params, const)
            return x.sub_(const.mean).div_(const.std)

    @staticmethod
    def _crop(x: torch.Tensor, params: ViewParams) -> torch.Tensor:
        """Crop each box, resize it to the full size (bilinear) and flip, in one affine grid_sample."""
        x0, y0, width, height = params.box.unbind(1)
        zero = torch.zeros_like(x0)
        sign = 1 - 2 * params.flip.to(x.dtype)
        theta = torch.stack(
            [
                torch.stack([width * sign, zero, 2 * x0 + width - 1], dim=1),
                torch.stack([zero, height, 2 * y0 + height - 1], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    @staticmethod
    def _jitter(x: torch.Tensor, params: ViewParams, const: _Constants) -> torch.Tensor:
        """torchvision's ColorJitter in each sample's order, with a clamp to [0, 1] after every step.

        Brightness, contrast and saturation are affine colour maps ``M x + t``. Hue is not, and costs the
        most, so it runs once: first up to three matrix steps (each sample's adjustments before its hue,
        identity for the rest), then the hue shift of every sample, then up to three more (those after it).
        """
        batch = len(x)
        bright, contrast, sat, hue = params.jitter.unbind(1)
        eye = const.eye.expand(batch, 3, 3)
        gray_blend = (1 - sat).view(-1, 1, 1) * const.to_gray
        # indexed by op: 0 brightness, 1 contrast, 2 saturation, 3 none (the hue's place in the order)
        mats = torch.stack(
            [
                bright.view(-1, 1, 1) * eye,
                contrast.view(-1, 1, 1) * eye,
                sat.view(-1, 1, 1) * eye + gray_blend,
                eye,
            ],
            dim=1,
        )
        hue_at = (params.order == 3).to(torch.uint8).argmax(dim=1, keepdim=True)
        steps = torch.arange(3, device=x.device).expand(batch, 3)
        others = params.order.gather(1, steps + (steps >= hue_at).long())  # the order without the hue
        rows = torch.arange(batch, device=x.device)
        none = torch.full_like(others[:, 0], 3)
        for before_hue in (True, False):
            for step in range(3):
                active = (step < hue_at[:, 0]) if before_hue else (step >= hue_at[:, 0])
                op = torch.where(active, others[:, step], none)
                # contrast blends with the mean luma of the image as it is at this step
                mean_luma = x.mean(dim=(2, 3)) @ const.gray
                offset = torch.where(op == 1, (1 - contrast) * mean_luma, torch.zeros_like(mean_luma))
                x = _mix(mats[rows, op], x, offset).clamp_(0, 1)
            if before_hue:
                x = _hue_shift(x, hue, const)
        return x

    def _blur(self, x: torch.Tensor, params: ViewParams, const: _Constants) -> torch.Tensor:
        """Gaussian blur with each sample's sigma (identity kernel where not blurred): a separable convolution
        with one group per (sample, channel), reflect padding as torchvision."""
        batch, channels, height, width = x.shape
        kernel = torch.exp(-0.5 * (const.taps / params.sigma.view(-1, 1)) ** 2)
        kernel = kernel / kernel.sum(dim=1, keepdim=True)
        kernel = torch.where(params.blur.view(-1, 1), kernel, (const.taps == 0).to(kernel.dtype))
        kernel = kernel.repeat_interleave(channels, dim=0)
        half = len(const.taps) // 2
        y = F.pad(x.reshape(1, batch * channels, height, width), (half, half, half, half), mode="reflect")
        y = F.conv2d(y, kernel.view(-1, 1, 1, 2 * half + 1), groups=batch * channels)
        y = F.conv2d(y, kernel.view(-1, 1, 2 * half + 1, 1), groups=batch * channels)
        return y.view(batch, channels, height, width)


class CPUViews:
    """The same pipeline with torchvision transforms v2, image by image, drawing from torch's global RNG.
    Picklable, to run in DataLoader workers (:class:`TwoViewDataset` seeds each item)."""

    def __init__(self, settings: ViewSettings):
        from torchvision.transforms import v2

        s = settings
        brightness, contrast, saturation, hue = s.jitter
        steps = [
            v2.RandomResizedCrop(s.image_size, scale=s.crop_scale, ratio=s.crop_ratio, antialias=True),
            v2.RandomHorizontalFlip(s.flip_p),
            v2.ToDtype(torch.float32, scale=True),
            v2.RandomApply([v2.ColorJitter(brightness, contrast, saturation, hue)], p=s.jitter_p),
            v2.RandomGrayscale(s.grayscale_p),
        ]
        if s.blur:
            steps.append(v2.RandomApply([v2.GaussianBlur(s.blur_kernel_size, s.blur_sigma)], p=s.blur_p))
        steps.append(v2.Normalize(list(s.mean), list(s.std)))
        self.transform = v2.Compose(steps)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [3, S, S] -> two independent normalised float views."""
        return self.transform(image), self.transform(image)


class TwoViewDataset(Dataset):
    """Items ``(view1, view2)`` of the images of ``split`` (an ImageDataset split), made by ``views``.

    Each item's random draws come from its own seed, derived from ``(seed, epoch, index)``, and leave torch's
    global RNG as it was: an item's views are the same whatever the worker count, the rank that loads it or the
    step a run resumed at. Call :meth:`set_epoch` before each epoch.
    """

    def __init__(self, split: Dataset, views: CPUViews, seed: int = 0):
        self.split = split
        self.views = views
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def item_seed(self, index: int) -> int:
        text = f"{self.seed}:{self.epoch}:{index}".encode()
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")

    def __len__(self) -> int:
        return len(self.split)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, _ = self.split[index]
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(self.item_seed(index))  # the CPU's only: CUDA RNGs are left alone
            return self.views(image)
