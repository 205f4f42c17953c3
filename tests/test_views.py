"""SimCLR views: settings resolution, the batched path against torchvision's functions, the batched and CPU
paths against each other in distribution, reproducibility."""

from __future__ import annotations

import math
import pickle
from dataclasses import replace

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

import simclr
from simclr.data import ImageDataset
from simclr.errors import PluginError
from simclr.schema import AugmentConfig
from simclr.views import (
    BatchedViews,
    CPUViews,
    TwoViewDataset,
    ViewParams,
    ViewSettings,
    normalize,
    resolve_views,
)

MEAN = (0.4, 0.5, 0.6)
STD = (0.2, 0.25, 0.3)


def settings(size: int = 32, **changes) -> ViewSettings:
    base = ViewSettings(
        image_size=size,
        mean=MEAN,
        std=STD,
        crop_scale=(0.08, 1.0),
        crop_ratio=(3 / 4, 4 / 3),
        flip_p=0.5,
        jitter_strength=1.0,
        jitter_p=0.8,
        grayscale_p=0.2,
        blur=True,
        blur_p=0.5,
        blur_kernel_size=3,
        blur_sigma=(0.1, 2.0),
    )
    return replace(base, **changes)


def unnormalize(views: torch.Tensor) -> torch.Tensor:
    return views * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)


def random_images(count: int, size: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)


def fixed_params(batch: int, **changes) -> ViewParams:
    """Identity parameters (whole image, no flip, no jitter, no grayscale, no blur), with ``changes``."""
    base = ViewParams(
        box=torch.tensor([[0.0, 0.0, 1.0, 1.0]]).repeat(batch, 1),
        flip=torch.zeros(batch, dtype=torch.bool),
        jitter=torch.tensor([[1.0, 1.0, 1.0, 0.0]]).repeat(batch, 1),
        order=torch.arange(4).repeat(batch, 1),
        gray=torch.zeros(batch, dtype=torch.bool),
        blur=torch.zeros(batch, dtype=torch.bool),
        sigma=torch.ones(batch),
    )
    return replace(base, **changes)


class _Defaults(ImageDataset):
    """A dataset with given image size and augment_defaults, for resolve_views."""

    class_names = ["a"]

    def __init__(self, size: int, defaults: dict):
        self.image_size = size
        self.defaults = defaults

    def augment_defaults(self) -> dict:
        return self.defaults

    def pretrain_split(self):
        return []


# --- settings ---------------------------------------------------------------------------------------------


def test_resolve_takes_config_then_dataset_then_paper():
    paper = resolve_views(AugmentConfig(), _Defaults(32, {}))
    assert (paper.crop_scale, paper.jitter_strength, paper.blur) == ((0.08, 1.0), 1.0, False)
    assert resolve_views(AugmentConfig(), _Defaults(33, {})).blur is True
    dataset = _Defaults(96, {"crop_scale": [0.2, 1.0], "jitter_strength": 0.5, "blur": False})
    from_dataset = resolve_views(AugmentConfig(), dataset)
    assert (from_dataset.crop_scale, from_dataset.jitter_strength, from_dataset.blur) == (
        (0.2, 1.0),
        0.5,
        False,
    )
    cfg = AugmentConfig(crop_scale=(0.5, 0.9), jitter_strength=0.0, blur=True, flip_p=0.1)
    from_cfg = resolve_views(cfg, dataset)
    assert (from_cfg.crop_scale, from_cfg.jitter_strength, from_cfg.blur, from_cfg.flip_p) == (
        (0.5, 0.9),
        0.0,
        True,
        0.1,
    )
    assert from_cfg.mean == dataset.mean and from_cfg.image_size == 96


def test_resolve_uses_the_real_datasets_defaults():
    digits = simclr.create("dataset", "digits", image_size=16)
    resolved = resolve_views(AugmentConfig(), digits)
    assert (resolved.jitter_strength, resolved.blur) == (0.5, False)
    assert resolved.mean == digits.mean and resolved.std == digits.std


def test_bad_dataset_defaults_are_a_plugin_error():
    with pytest.raises(PluginError, match=r"\['jitter_strenght'\] are not fields .*may only set \['blur', 'crop_sc"):
        resolve_views(AugmentConfig(), _Defaults(32, {"jitter_strenght": 0.5}))
    with pytest.raises(PluginError, match=r"\['flip_p'\] are not fields a config may leave unset"):
        resolve_views(AugmentConfig(), _Defaults(32, {"flip_p": 0.0}))  # never unset: would be ignored
    with pytest.raises(PluginError, match=r"returned \{'crop_scale': \(0.9, 0.1\)\}: crop_scale: crop_scale must be"):
        resolve_views(AugmentConfig(), _Defaults(32, {"crop_scale": (0.9, 0.1)}))


@pytest.mark.parametrize(("size", "fraction", "kernel"), [(96, 0.1, 9), (224, 0.1, 23), (32, 0.1, 3), (64, 0.25, 17)])
def test_blur_kernel_is_odd_and_about_a_tenth_of_the_image(size, fraction, kernel):
    assert resolve_views(AugmentConfig(blur_kernel_fraction=fraction), _Defaults(size, {})).blur_kernel_size == kernel


def test_jitter_ranges_follow_the_paper():
    assert settings(jitter_strength=0.5).jitter == pytest.approx((0.4, 0.4, 0.4, 0.1))
    assert settings(jitter_strength=4.0).jitter[3] == 0.5  # torchvision's hue limit


# --- the batched path against torchvision's functions ------------------------------------------------------


def test_crop_matches_torchvision_resized_crop_inside_the_box():
    size = 32
    images = random_images(4, size)
    boxes = torch.tensor([[0, 0, 32, 32], [3, 5, 10, 12], [8, 1, 24, 30], [0, 10, 17, 22]])
    flip = torch.tensor([False, False, True, True])
    params = fixed_params(4, box=boxes.float() / size, flip=flip)
    views = unnormalize(BatchedViews(settings(size, jitter_p=0.0, grayscale_p=0.0, blur=False)).apply(images, params))
    for view, (left, top, width, height), flipped, image in zip(views, boxes.tolist(), flip, images, strict=True):
        expected = TF.resized_crop(image.float() / 255, top, left, height, width, [size, size], antialias=False)
        if flipped:
            expected = expected.flip(-1)
        # the batched crop is a continuous box: its outermost output pixels may blend in the pixel just
        # outside the box, where torchvision clamps to the box's edge
        rim_x, rim_y = size // width + 1, size // height + 1
        inner = (slice(None), slice(rim_y, -rim_y), slice(rim_x, -rim_x))
        torch.testing.assert_close(view[inner], expected[inner], atol=1e-5, rtol=0)


def test_jitter_matches_torchvision_in_each_samples_order():
    count = 24
    images = random_images(count, 16)
    generator = torch.Generator().manual_seed(0)
    factors = torch.rand(count, 4, generator=generator) * torch.tensor([1.6, 1.6, 1.6, 1.0]) + torch.tensor(
        [0.2, 0.2, 0.2, -0.5]
    )
    factors[:2] = torch.tensor([1.0, 1.0, 1.0, 0.0])  # not jittered
    order = torch.stack([torch.randperm(4, generator=generator) for _ in range(count)])
    params = fixed_params(count, jitter=factors, order=order)
    views = unnormalize(BatchedViews(settings(16, grayscale_p=0.0, blur=False)).apply(images, params))
    functions = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    for view, image, sample_factors, sample_order in zip(views, images, factors, order, strict=True):
        expected = image.float() / 255
        for op in sample_order.tolist():
            expected = functions[op](expected, sample_factors[op].item())
        torch.testing.assert_close(view, expected, atol=2e-5, rtol=0)


def test_blur_matches_torchvision_gaussian_blur_per_sample():
    images = random_images(4, 24)
    sigma = torch.tensor([0.3, 1.0, 1.7, 2.0])
    blurred = torch.tensor([True, True, False, True])
    params = fixed_params(4, blur=blurred, sigma=sigma)
    s = settings(24, jitter_p=0.0, grayscale_p=0.0, blur_kernel_size=5)
    views = unnormalize(BatchedViews(s).apply(images, params))
    for view, image, sample_sigma, on in zip(views, images, sigma, blurred, strict=True):
        expected = image.float() / 255
        if on:
            expected = TF.gaussian_blur(expected, [5, 5], [sample_sigma.item()] * 2)
        torch.testing.assert_close(view, expected, atol=1e-5, rtol=0)


def test_grayscale_uses_torchvision_luma():
    images = random_images(2, 8)
    params = fixed_params(2, gray=torch.tensor([True, False]))
    views = unnormalize(BatchedViews(settings(8, jitter_p=0.0, blur=False)).apply(images, params))
    torch.testing.assert_close(views[0], TF.rgb_to_grayscale(images[0].float() / 255, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(views[1], images[1].float() / 255, atol=1e-5, rtol=0)


def test_normalize_is_the_plain_evaluation_transform():
    images = random_images(3, 5)
    expected = (images.float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    torch.testing.assert_close(normalize(images, MEAN, STD), expected)
    torch.testing.assert_close(normalize(images[0], MEAN, STD), expected[0])


# --- random draws ------------------------------------------------------------------------------------------


def test_output_dtype_shape_and_range():
    images = random_images(64, 32)
    views = BatchedViews(settings(32))(images, torch.Generator().manual_seed(0))
    assert views.dtype == torch.float32 and views.shape == images.shape
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast_views = BatchedViews(settings(32))(images, torch.Generator().manual_seed(0))
    torch.testing.assert_close(autocast_views, views, rtol=0, atol=0)
    pixels = unnormalize(views)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_two_views_of_an_image_differ_and_parameters_differ_across_the_batch():
    images = random_images(1, 32).expand(64, -1, -1, -1)
    views = BatchedViews(settings(32))
    first, second = views.pair(images, torch.Generator().manual_seed(0))
    assert first.shape == second.shape == (64, 3, 32, 32)
    assert ((first - second).abs().flatten(1).amax(dim=1) > 0.1).all()
    assert len({tuple(view.flatten()[:50].tolist()) for view in first}) == 64  # same image, 64 different views
    params = views.sample_params(256, torch.Generator().manual_seed(0))
    assert len(set(params.box[:, 2].tolist())) == 256
    assert len(set(params.sigma.tolist())) == 256
    assert 0 < params.flip.sum() < 256 and 0 < params.gray.sum() < 256 and 0 < params.blur.sum() < 256
    jittered = params.jitter[:, 0] != 1
    assert 0 < jittered.sum() < 256 and len(set(params.jitter[jittered, 3].tolist())) == int(jittered.sum())
    assert len({tuple(order) for order in params.order.tolist()}) > 12
    assert (params.order.sort(dim=1).values == torch.arange(4)).all()


def test_fixed_seed_reproduces_views_and_generator_none_uses_the_global_seed():
    images = random_images(16, 32)
    views = BatchedViews(settings(32))
    torch.testing.assert_close(
        views(images, torch.Generator().manual_seed(7)),
        views(images, torch.Generator().manual_seed(7)),
        rtol=0,
        atol=0,
    )
    assert not torch.equal(
        views(images, torch.Generator().manual_seed(7)), views(images, torch.Generator().manual_seed(8))
    )
    torch.manual_seed(3)
    first = views(images)
    torch.manual_seed(3)
    torch.testing.assert_close(views(images), first, rtol=0, atol=0)


def test_crop_boxes_follow_torchvision_get_params():
    s = settings(32, crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3))
    params = BatchedViews(s).sample_params(4000, torch.Generator().manual_seed(0))
    x0, y0, width, height = params.box.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + width <= 1 + 1e-6).all() and (y0 + height <= 1 + 1e-6).all()
    aspect = width / height
    assert (aspect >= 3 / 4 - 1e-4).all() and (aspect <= 4 / 3 + 1e-4).all()
    torch.manual_seed(0)
    image = torch.zeros(1, 100, 100)
    boxes = [v2.RandomResizedCrop.get_params(image, [0.08, 1.0], [3 / 4, 4 / 3]) for _ in range(4000)]
    reference = torch.tensor([height * width / 100**2 for _, _, height, width in boxes])
    area = width * height
    for q in (0.1, 0.5, 0.9):
        assert torch.quantile(area, q) == pytest.approx(torch.quantile(reference, q).item(), abs=0.03)
    assert area.mean() == pytest.approx(reference.mean().item(), abs=0.015)
    # the paper's aspect range is symmetric in log space
    assert aspect.log().mean() == pytest.approx(0.0, abs=0.02)


def test_jitter_factors_are_drawn_as_colorjitter_draws_them():
    params = BatchedViews(settings(32, jitter_strength=1.0, jitter_p=0.8)).sample_params(4000)
    jittered = (params.jitter != torch.tensor([1.0, 1.0, 1.0, 0.0])).any(dim=1)
    assert jittered.float().mean() == pytest.approx(0.8, abs=0.03)
    factors = params.jitter[jittered]
    for column, (low, high) in enumerate([(0.2, 1.8), (0.2, 1.8), (0.2, 1.8), (-0.2, 0.2)]):
        values = factors[:, column]
        assert low <= values.min() < low + 0.01 and high - 0.01 < values.max() <= high
        assert values.mean() == pytest.approx((low + high) / 2, abs=0.03 * (high - low))
        assert values.std() == pytest.approx((high - low) / math.sqrt(12), rel=0.05)  # uniform


def test_crop_falls_back_to_the_whole_image_when_no_draw_fits():
    params = BatchedViews(settings(32, crop_scale=(1.0, 1.0), crop_ratio=(2.0, 3.0))).sample_params(8)
    # area 1 at aspect >= 2 never fits: the whole width, height 1/2 (aspect clamped to 2), centred
    torch.testing.assert_close(params.box, torch.tensor([[0.0, 0.25, 1.0, 0.5]]).repeat(8, 1))


# --- batched and CPU paths agree in distribution ----------------------------------------------------------

SIZE = 32


def coordinate_image() -> torch.Tensor:
    """Red = 8x + 4 along the columns, green = 8y + 4 along the rows, blue = 128: a view's crop box, flip and
    greyness can be read back from its pixels."""
    ramp = torch.arange(SIZE) * 8 + 4
    red = ramp.view(1, SIZE).expand(SIZE, SIZE)
    green = ramp.view(SIZE, 1).expand(SIZE, SIZE)
    return torch.stack([red, green, torch.full((SIZE, SIZE), 128)]).to(torch.uint8)


def read_views(views: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per view: grey?, flipped?, crop area (from the ramps between output columns/rows 8 and 24)."""
    pixels = unnormalize(views) * 255
    red, green, blue = pixels.unbind(1)
    gray = ((red - green).abs() + (green - blue).abs()).flatten(1).amax(dim=1) < 1.0
    dx = (red[:, :, 24] - red[:, :, 8]).mean(dim=1)  # = 8 * 16 * width / 32 pixels = 4 * width
    dy = (green[:, 24, :] - green[:, 8, :]).mean(dim=1)
    area = (dx.abs() / 4 / SIZE) * (dy / 4 / SIZE)
    return {"gray": gray, "flipped": dx < 0, "area": area}


def test_batched_and_cpu_paths_agree_on_crop_area_flip_and_grayscale():
    s = settings(SIZE, jitter_p=0.0, blur=False, grayscale_p=0.3, flip_p=0.4)
    count = 3000
    images = coordinate_image().expand(count, -1, -1, -1)
    batched = read_views(BatchedViews(s)(images, torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    transform = CPUViews(s).transform
    cpu = read_views(torch.stack([transform(image) for image in images]))
    for name, measured in (("batched", batched), ("cpu", cpu)):
        colour = ~measured["gray"]
        assert measured["gray"].float().mean() == pytest.approx(0.3, abs=0.03), name
        assert measured["flipped"][colour].float().mean() == pytest.approx(0.4, abs=0.03), name
    # torchvision rounds boxes to whole pixels, which at 32 px lets slightly larger crops fit (+0.02 at the
    # 90th percentile); the batched boxes are continuous
    for q in (0.1, 0.5, 0.9):
        b_area = torch.quantile(batched["area"][~batched["gray"]], q)
        c_area = torch.quantile(cpu["area"][~cpu["gray"]], q)
        assert b_area == pytest.approx(c_area.item(), abs=0.045), q
    b_mean, c_mean = batched["area"][~batched["gray"]].mean(), cpu["area"][~cpu["gray"]].mean()
    assert b_mean == pytest.approx(c_mean.item(), abs=0.035)
    # E[area] of RandomResizedCrop((0.08, 1), (3/4, 4/3)) on a square image: 0.48
    assert 0.45 < b_mean < 0.51


def test_batched_and_cpu_paths_agree_on_colour_jitter_statistics():
    s = settings(16, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0, grayscale_p=0.0, blur=False)
    s = replace(s, jitter_p=1.0, jitter_strength=0.5)
    smooth = torch.stack(torch.meshgrid(torch.linspace(40, 200, 16), torch.linspace(60, 180, 16), indexing="ij"))
    image = torch.cat([smooth, smooth[:1].flip(-1)]).round().to(torch.uint8)
    count = 400  # torchvision's ColorJitter takes milliseconds per image
    images = image.expand(count, -1, -1, -1)
    batched = unnormalize(BatchedViews(s)(images, torch.Generator().manual_seed(0)))
    torch.manual_seed(0)
    cpu = unnormalize(torch.stack([CPUViews(s).transform(img) for img in images]))
    for statistic in (lambda v: v.mean(dim=(2, 3)), lambda v: v.std(dim=(2, 3))):
        b_stat, c_stat = statistic(batched), statistic(cpu)
        torch.testing.assert_close(b_stat.mean(0), c_stat.mean(0), atol=0.03, rtol=0)
        torch.testing.assert_close(b_stat.std(0), c_stat.std(0), atol=0.02, rtol=0)


# --- the CPU path -----------------------------------------------------------------------------------------


def test_cpu_views_give_two_different_normalised_views_and_pickle():
    s = settings(32)
    views = pickle.loads(pickle.dumps(CPUViews(s)))
    image = random_images(1, 32)[0]
    first, second = views(image)
    assert first.dtype == torch.float32 and first.shape == (3, 32, 32) and not torch.equal(first, second)
    pixels = unnormalize(torch.stack([first, second]))
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5


def test_two_view_dataset_feeds_a_dataloader():
    dataset = simclr.create("dataset", "synthetic", image_size=16, count=8)
    pairs = TwoViewDataset(dataset.pretrain_split(), CPUViews(settings(16, blur=False)))
    first, second = next(iter(torch.utils.data.DataLoader(pairs, batch_size=4)))
    assert len(pairs) == 8 and first.shape == second.shape == (4, 3, 16, 16)
    assert not torch.equal(first, second)


def test_two_view_items_depend_only_on_seed_epoch_and_index(monkeypatch):
    seeded_cuda = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seeded_cuda.append)
    split = simclr.create("dataset", "synthetic", image_size=16, count=8).pretrain_split()
    pairs = TwoViewDataset(split, CPUViews(settings(16)), seed=5)

    def load(order, workers):
        loader = torch.utils.data.DataLoader(pairs, batch_size=2, sampler=order, num_workers=workers)
        views = [(a, b) for first, second in loader for a, b in zip(first, second, strict=True)]
        return dict(zip(order, views, strict=True))

    global_state = torch.get_rng_state()
    pairs[0]
    assert torch.equal(torch.get_rng_state(), global_state)  # the global RNG is left alone
    assert seeded_cuda == []  # and so are CUDA's (fork_rng(devices=[]) would not restore them)
    in_process = load(list(range(8)), workers=0)
    # other workers, another order, another draw of the global RNG: the same views of every item
    torch.manual_seed(123)
    in_workers = load([7, 3, 0, 5, 1, 6, 2, 4], workers=2)
    for index, (a, b) in in_process.items():
        assert torch.equal(a, in_workers[index][0]) and torch.equal(b, in_workers[index][1]), index
    assert not torch.equal(*in_process[0])  # the two views of an item still differ
    pairs.set_epoch(1)
    assert not torch.equal(pairs[0][0], in_process[0][0])  # a new epoch draws new views
    assert not torch.equal(TwoViewDataset(split, CPUViews(settings(16)), seed=6)[0][0], in_process[0][0])


def test_views_of_a_real_dataset_batch():
    digits = simclr.create("dataset", "digits", image_size=16)
    views = BatchedViews(resolve_views(AugmentConfig(), digits))
    batch = digits.pretrain_tensor()[:32]
    out = views(batch, torch.Generator().manual_seed(0))
    assert out.shape == (32, 3, 16, 16) and torch.isfinite(out).all()
    assert math.isclose(
        digits.mean[0], normalize(digits.pretrain_tensor(), (0, 0, 0), (1, 1, 1)).mean().item(), abs_tol=1e-4
    )
