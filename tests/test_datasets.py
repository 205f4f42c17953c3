"""The built-in datasets, built through the registry: digits, synthetic, image_folder, and cifar10 / stl10
loaded by torchvision's real loaders from tiny files written in the datasets' own on-disk formats."""

from __future__ import annotations

import logging
import pickle
import shutil
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import simclr
from simclr.data import ImageDataset, InMemoryImageDataset, TensorSplit
from simclr.plugins.datasets import files as files_module
from simclr.plugins.datasets import stl10 as stl10_module


def split_tensors(split) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*(split[i] for i in range(len(split))), strict=True)
    return torch.stack(images), torch.tensor(labels)


def float_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = images.double().div(255).permute(1, 0, 2, 3).reshape(3, -1)
    return pixels.mean(dim=1), pixels.std(dim=1, unbiased=False)


# --- the in-memory helpers a dataset plugin can build on ------------------------------------------------


def test_in_memory_dataset_serves_its_tensors_and_their_statistics():
    images = torch.randint(0, 256, (6, 3, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    pretrain = TensorSplit(images)
    train, test = TensorSplit(images[:4], torch.tensor([0, 1, 0, 1])), TensorSplit(images[4:], torch.tensor([1, 0]))
    dataset = InMemoryImageDataset(pretrain, (train, test))
    assert dataset.pretrain_split() is pretrain and dataset.pretrain_tensor() is images
    assert dataset.eval_splits() == (train, test) and InMemoryImageDataset(pretrain).eval_splits() is None
    image, label = pretrain[2]
    assert torch.equal(image, images[2]) and label == -1 and test[0][1] == 1
    mean, std = float_stats(images)
    assert dataset.mean == pytest.approx(mean.tolist(), abs=1e-12) and dataset.std == pytest.approx(std.tolist())
    with pytest.raises(ValueError, match="uint8"):
        TensorSplit(images.float())
    with pytest.raises(ValueError, match="6 images but 2 labels"):
        TensorSplit(images, torch.tensor([0, 1]))


# --- digits ----------------------------------------------------------------------------------------------


def test_digits_are_sklearns_images_in_a_stratified_split():
    from sklearn.datasets import load_digits

    dataset = simclr.create("dataset", "digits", image_size=8)
    assert isinstance(dataset, ImageDataset)
    train_images, train_labels = split_tensors(dataset.eval_splits()[0])
    test_images, test_labels = split_tensors(dataset.eval_splits()[1])
    assert len(train_labels) + len(test_labels) == 1797 and len(test_labels) == 450
    assert dataset.pretrain_split() is dataset.eval_splits()[0]
    # at 8 px the images are sklearn's, ink 0..16 scaled to 0..255, in three equal channels
    digits = load_digits()
    expected = Counter(
        (np.round(img * 255 / 16).astype(np.uint8).tobytes(), int(y))
        for img, y in zip(digits.images, digits.target, strict=True)
    )
    images, labels = torch.cat([train_images, test_images]), torch.cat([train_labels, test_labels])
    got = Counter((img[0].numpy().tobytes(), int(y)) for img, y in zip(images, labels, strict=True))
    assert got == expected
    assert (images[:, 0] == images[:, 1]).all() and (images[:, 1] == images[:, 2]).all()
    # stratified: each class keeps its share in the test split (to within one image)
    total = Counter(digits.target.tolist())
    test_counts = Counter(test_labels.tolist())
    assert all(abs(test_counts[k] - 0.25 * total[k]) <= 1 for k in range(10))
    assert dataset.class_names == [str(k) for k in range(10)] and dataset.num_classes == 10


def test_digits_upscaled_split_is_fixed_and_stats_come_from_the_data():
    dataset = simclr.create("dataset", "digits", image_size=32, test_fraction=0.2)
    again = simclr.create("dataset", "digits", image_size=32, test_fraction=0.2)
    images = dataset.pretrain_tensor()
    assert images.dtype == torch.uint8 and images.shape == (1437, 3, 32, 32) and dataset.image_size == 32
    assert torch.equal(images, again.pretrain_tensor())
    image, label = dataset.eval_splits()[1][0]
    assert image.shape == (3, 32, 32) and isinstance(label, int) and 0 <= label <= 9
    mean, std = float_stats(images)
    assert dataset.mean == pytest.approx(mean.tolist(), abs=1e-9)
    assert dataset.std == pytest.approx(std.tolist(), abs=1e-9)
    assert dataset.augment_defaults()["blur"] is False


def test_digits_rejects_sizes_below_8():
    with pytest.raises(simclr.ConfigError, match="image_size"):
        simclr.create("dataset", "digits", image_size=4)


# --- synthetic -------------------------------------------------------------------------------------------


def test_synthetic_is_seeded_random_images():
    dataset = simclr.create("dataset", "synthetic", image_size=12, count=40, num_classes=3, seed=5)
    images = dataset.pretrain_tensor()
    assert images.shape == (40, 3, 12, 12) and images.dtype == torch.uint8
    same = simclr.create("dataset", "synthetic", image_size=12, count=40, seed=5)
    other = simclr.create("dataset", "synthetic", image_size=12, count=40)
    assert torch.equal(images, same.pretrain_tensor()) and not torch.equal(images, other.pretrain_tensor())
    train, test = dataset.eval_splits()
    assert (len(train), len(test)) == (30, 10) and len(dataset.pretrain_split()) == 40
    labels = split_tensors(dataset.pretrain_split())[1]
    assert set(labels.tolist()) == {0, 1, 2} and dataset.num_classes == 3
    assert images.float().mean().item() == pytest.approx(127.5, abs=5)


# --- image_folder ----------------------------------------------------------------------------------------


def save(path: Path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def halves(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2, 0] = 255
    pixels[:, width // 2 :, 2] = 255
    return Image.fromarray(pixels)


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    save(root / "a.png", halves(40, 20))
    save(root / "nested" / "deeper" / "b.jpg", Image.new("RGB", (30, 50), (10, 200, 30)))
    save(root / "nested" / "gray.png", Image.new("L", (16, 16), 77))
    save(root / "nested" / "alpha.png", Image.new("RGBA", (20, 20), (5, 6, 7, 100)))
    (root / "nested" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    (root / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    return root


def test_image_folder_reads_nested_images_and_skips_broken_ones_with_one_warning(image_tree, caplog):
    with caplog.at_level(logging.WARNING, logger="simclr"):
        dataset = simclr.create("dataset", "image_folder", train=str(image_tree), image_size=16)
        dataset.pretrain_split()
        dataset.pretrain_split()  # read once
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = warnings[0].getMessage()
    assert len(warnings) == 1 and message.startswith(f"image_folder: train {image_tree}: skipped 2 files: ")
    assert f"1 not images (no format PIL recognises) (e.g. {image_tree / 'notes.txt'})" in message
    broken = image_tree / "nested" / "broken.png"
    assert f"1 damaged images (a format PIL recognises, but truncated or corrupt) ({broken})" in message
    images = dataset.pretrain_tensor()
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.uint8
    assert dataset.eval_splits() is None
    assert split_tensors(dataset.pretrain_split())[1].tolist() == [-1] * 4
    by_colour = {tuple(img[:, 8, 8].tolist()): img for img in images}
    # 40x20 -> resized to 32x16, centre crop 16: left 8 columns red, right 8 blue
    halves_image = images[0]
    assert halves_image[:, :, :7].float().mean(dim=(1, 2)).tolist() == pytest.approx([255, 0, 0], abs=1)
    assert halves_image[:, :, 9:].float().mean(dim=(1, 2)).tolist() == pytest.approx([0, 0, 255], abs=1)
    assert (77, 77, 77) in by_colour  # grayscale became RGB
    assert (5, 6, 7) in by_colour  # alpha dropped
    assert any(abs(r - 10) <= 3 and abs(g - 200) <= 3 and abs(b - 30) <= 3 for r, g, b in by_colour)  # JPEG
    mean, std = float_stats(images)
    assert dataset.mean == pytest.approx(mean.tolist(), abs=1e-9)


def test_image_folder_scales_16_bit_images_and_applies_exif_orientation(tmp_path):
    gradient = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 257).astype(np.uint16)  # 0 .. 65535
    save(tmp_path / "train" / "deep.png", Image.fromarray(gradient))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated 90 degrees clockwise, the left (red) half on top
    (tmp_path / "train").mkdir(exist_ok=True)
    halves(40, 20).save(tmp_path / "train" / "rotated.jpg", exif=exif, quality=95)
    dataset = simclr.create("dataset", "image_folder", train=str(tmp_path / "train"), image_size=16)
    deep, rotated = dataset.pretrain_tensor()
    assert Image.open(tmp_path / "train" / "deep.png").mode.startswith("I")  # PIL reads it as 16-bit
    expected = np.rint(gradient / 257).astype(np.uint8)  # = the 8-bit gradient 0 .. 255, not clipped white
    assert (deep.numpy() == expected).all()
    # 20x40 once upright, resized to 16x32, centre crop: top 8 rows red, bottom 8 blue
    assert rotated[:, :7, :].float().mean(dim=(1, 2)).tolist() == pytest.approx([255, 0, 0], abs=6)
    assert rotated[:, 9:, :].float().mean(dim=(1, 2)).tolist() == pytest.approx([0, 0, 255], abs=6)


def test_image_folder_reads_12_bit_data_in_16_bit_images_with_bit_depth(tmp_path, caplog):
    """Many cameras store 12-bit data in 16-bit files: scaled as 16-bit they read dark (4095 -> 16 of 255), which
    is warned of with the setting to use; bit_depth 12 makes 4095 white and clips anything brighter."""
    gradient = (np.arange(16 * 16, dtype=np.uint32).reshape(16, 16) * 16).astype(np.uint16)  # 0 .. 4080
    gradient[0, 0] = 4095
    save(tmp_path / "train" / "camera.png", Image.fromarray(gradient))
    hot = np.full((16, 16), 5000, dtype=np.uint16)  # above 12 bits: clipped white
    save(tmp_path / "train" / "hot.png", Image.fromarray(hot))
    with caplog.at_level("WARNING", logger="simclr"):
        default = simclr.create("dataset", "image_folder", train=str(tmp_path / "train"), image_size=16)
        camera, _ = default.pretrain_tensor()
    assert int(camera.max()) == round(4095 / 257) == 16
    assert "the 2 16-bit images use values up to 5000 only, of the 65535 that bit_depth 16 makes white" in caplog.text
    assert "if they hold 13-bit data, set data.dataset.bit_depth: 13" in caplog.text
    caplog.clear()
    (tmp_path / "train" / "hot.png").unlink()
    with caplog.at_level("WARNING", logger="simclr"):
        twelve = simclr.create("dataset", "image_folder", train=str(tmp_path / "train"), image_size=16, bit_depth=12)
        [camera] = twelve.pretrain_tensor()
    expected = np.rint(gradient * (255 / 4095)).astype(np.uint8)
    assert (camera.numpy() == expected).all() and int(camera.max()) == 255
    assert "16-bit" not in caplog.text  # the data fills its 12 bits: nothing to say
    save(tmp_path / "train" / "hot.png", Image.fromarray(hot))
    with caplog.at_level("WARNING", logger="simclr"):
        clipped = simclr.create("dataset", "image_folder", train=str(tmp_path / "train"), image_size=16, bit_depth=12)
        assert 255 in [int(image.min()) for image in clipped.pretrain_tensor()]  # all of hot.png white: 5000 clipped
    expected = "1 of the 2 16-bit images have values above 4095, the white of bit_depth 12 (up to 5000): they are"
    assert expected in caplog.text and "set data.dataset.bit_depth: 13 (or more)" in caplog.text


def test_image_folder_follows_links_to_folders_and_ends_link_loops(tmp_path):
    save(tmp_path / "train" / "own.png", Image.new("RGB", (8, 8), (1, 1, 1)))
    for i in (2, 3):
        save(tmp_path / "elsewhere" / f"{i}.png", Image.new("RGB", (8, 8), (i, i, i)))
    (tmp_path / "train" / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere" / "loop").symlink_to(tmp_path / "train", target_is_directory=True)
    dataset = simclr.create("dataset", "image_folder", train=str(tmp_path / "train"), image_size=8)
    assert sorted(dataset.pretrain_tensor()[:, 0, 0, 0].tolist()) == [1, 2, 3]


def test_dataset_paths_expand_the_home_folder(tmp_path, monkeypatch):
    """`train: ~/photos` in a YAML file or `--set data.dataset.root=~/data` reaches simclr unexpanded."""
    monkeypatch.setenv("HOME", str(tmp_path))
    save(tmp_path / "photos" / "a.png", Image.new("RGB", (8, 8), (9, 9, 9)))
    dataset = simclr.create("dataset", "image_folder", train="~/photos", image_size=8)
    assert dataset.pretrain_tensor()[0, :, 0, 0].tolist() == [9, 9, 9]
    with pytest.raises(simclr.UserError, match=f"in {tmp_path}/nowhere/cifar-10-batches-py"):
        simclr.create("dataset", "cifar10", root="~/nowhere")


def labelled_image_folder(root: Path, **params):
    """The image_folder dataset of ``root``'s train, eval_train and eval_test folders."""
    folders = {name: str(root / name) for name in ("train", "eval_train", "eval_test")}
    return simclr.create("dataset", "image_folder", **folders, **params)


def test_image_folder_labelled_eval_folders(tmp_path, caplog):
    for split, count in (("eval_train", 2), ("eval_test", 1)):
        for label, colour in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
            for i in range(count):
                save(tmp_path / split / label / f"{i}.png", Image.new("RGB", (12, 12), colour))
    save(tmp_path / "train" / "x.png", Image.new("RGB", (12, 12), (1, 2, 3)))
    dataset = labelled_image_folder(tmp_path, image_size=8)
    assert dataset.class_names == ["cat", "dog"]
    train_images, train_labels = split_tensors(dataset.eval_splits()[0])
    test_images, test_labels = split_tensors(dataset.eval_splits()[1])
    assert train_labels.tolist() == [0, 0, 1, 1] and test_labels.tolist() == [0, 1]
    assert train_images[0, :, 0, 0].tolist() == [200, 0, 0]
    assert test_images[1, :, 0, 0].tolist() == [0, 200, 0]

    # a class without test images is only not measured; one without training images cannot be learnt
    for image in (tmp_path / "eval_test" / "dog").iterdir():
        image.unlink()
    with caplog.at_level(logging.WARNING, logger="simclr"):
        dataset = labelled_image_folder(tmp_path)
        dataset.eval_splits()
    assert "has no images of classes ['dog']" in caplog.text and split_tensors(dataset.eval_splits()[1])[
        1
    ].tolist() == [0]
    (tmp_path / "eval_train" / "fish").mkdir()
    with pytest.raises(simclr.UserError, match=r"class folders \['fish'\] of .* hold no readable images"):
        labelled_image_folder(tmp_path).eval_splits()
    (tmp_path / "eval_train" / "fish").rmdir()
    (tmp_path / "eval_test" / "bird").mkdir()  # an empty test class folder is skipped, with a warning
    with caplog.at_level(logging.WARNING, logger="simclr"):
        assert labelled_image_folder(tmp_path).class_names == ["cat", "dog"]
    assert "class folders ['bird'] are empty and eval_train has no such class" in caplog.text
    save(tmp_path / "eval_test" / "bird" / "0.png", Image.new("RGB", (12, 12)))
    with pytest.raises(simclr.UserError, match=r"class folders \['bird'\] that eval_train does not have; a probe"):
        labelled_image_folder(tmp_path).eval_splits()
    with pytest.raises(simclr.ConfigError, match="both"):
        simclr.create("dataset", "image_folder", train=str(tmp_path / "train"), eval_train=str(tmp_path))


def test_image_folder_without_images_names_the_folder(tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no images here")
    with pytest.raises(simclr.UserError, match=f"no readable images in {empty}"):
        simclr.create("dataset", "image_folder", train=str(empty)).pretrain_split()
    with pytest.raises(simclr.UserError, match=r"data.dataset.train is .*missing, which is not there"):
        simclr.create("dataset", "image_folder", train=str(tmp_path / "missing")).pretrain_split()
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(simclr.UserError, match=r"a.png, which is a file, not a folder .*--set data.dataset.train=PATH"):
        simclr.create("dataset", "image_folder", train=str(tmp_path / "a.png")).pretrain_split()


def test_image_folder_reads_its_pretraining_folder_only_when_it_is_used(tmp_path):
    """An evaluation needs only the labelled folders: on a laptop the pre-training folder may be absent."""
    for split in ("eval_train", "eval_test"):
        for label, colour in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
            save(tmp_path / split / label / "0.png", Image.new("RGB", (8, 8), colour))
    folders = {split: str(tmp_path / split) for split in ("eval_train", "eval_test")}
    dataset = simclr.create("dataset", "image_folder", train=str(tmp_path / "elsewhere"), image_size=8, **folders)
    assert [len(split) for split in dataset.eval_splits()] == [2, 2]
    with pytest.raises(simclr.UserError, match="data.dataset.train is .*elsewhere, which is not there"):
        dataset.pretrain_split()
    # nor does it need to be given at all (as with --dataset image_folder, which starts from the defaults)
    dataset = simclr.create("dataset", "image_folder", image_size=8, **folders)
    assert [len(split) for split in dataset.eval_splits()] == [2, 2]
    with pytest.raises(simclr.UserError, match="data.dataset.train is not given; pre-training needs a folder"):
        dataset.pretrain_split()
    with pytest.raises(simclr.ConfigError, match="give train .*, or eval_train and eval_test"):
        simclr.create("dataset", "image_folder")


def test_image_folder_labelled_folders_without_class_folders_say_so(tmp_path):
    for split in ("eval_train", "eval_test"):
        save(tmp_path / split / "0.png", Image.new("RGB", (8, 8)))  # images straight in the folder
    folders = {split: str(tmp_path / split) for split in ("eval_train", "eval_test")}
    with pytest.raises(simclr.UserError, match=r"data.dataset.eval_train \(.*\) has no class folders; .*<class name>"):
        simclr.create("dataset", "image_folder", image_size=8, **folders).eval_splits()


def test_image_folder_matches_class_folders_written_in_either_unicode_form(tmp_path):
    """macOS names a folder "café" with a decomposed é (NFD); a copy made elsewhere may have the composed one."""
    composed, decomposed = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")
    for split, cafe in (("eval_train", composed), ("eval_test", decomposed)):
        for label in (cafe, "tea"):
            save(tmp_path / split / label / "0.png", Image.new("RGB", (8, 8), (200 if label == "tea" else 0, 0, 0)))
    folders = {split: str(tmp_path / split) for split in ("eval_train", "eval_test")}
    dataset = simclr.create("dataset", "image_folder", image_size=8, **folders)
    train, test = dataset.eval_splits()
    assert dataset.class_names == [composed, "tea"]
    assert train.labels.tolist() == test.labels.tolist() == [0, 1]
    assert torch.equal(train.images, test.images)
    save(tmp_path / "eval_test" / composed / "1.png", Image.new("RGB", (8, 8)))  # both forms side by side
    with pytest.raises(simclr.UserError, match="two class folders named 'café', one written in another Unicode"):
        simclr.create("dataset", "image_folder", image_size=8, **folders).eval_splits()


# --- CIFAR-10 and STL-10 on tiny files in their real formats ------------------------------------------------


def pattern(index: int, size: int) -> np.ndarray:
    """A uint8 image [3, size, size] that differs per index, channel, row and column."""
    c, y, x = np.meshgrid(np.arange(3), np.arange(size), np.arange(size), indexing="ij")
    return ((index * 7 + c * 50 + y * 3 + x * 5) % 256).astype(np.uint8)


def exists_only(fpath, md5=None) -> bool:
    return Path(fpath).is_file()


def write_cifar(root: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    """CIFAR-10's python pickles: 5 train batches of 2 images, a test batch of 3, batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written, index = {}, 0
    for name, count in [(f"data_batch_{k}", 2) for k in range(1, 6)] + [("test_batch", 3)]:
        images = np.stack([pattern(index + i, 32) for i in range(count)])
        labels = [(index + i) % 10 for i in range(count)]
        index += count
        with open(folder / name, "wb") as f:
            pickle.dump({"data": images.reshape(count, 3072), "labels": labels}, f)
        written[name] = (images, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{k}" for k in range(10)]}, f)
    return written


def test_cifar10_loads_real_format_files(tmp_path, monkeypatch):
    written = write_cifar(tmp_path)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", exists_only)  # tiny files, other md5s
    dataset = simclr.create("dataset", "cifar10", root=str(tmp_path))
    train_images, train_labels = split_tensors(dataset.pretrain_split())
    expected = np.concatenate([written[f"data_batch_{k}"][0] for k in range(1, 6)])
    assert torch.equal(train_images, torch.from_numpy(expected))
    assert train_labels.tolist() == sum((written[f"data_batch_{k}"][1] for k in range(1, 6)), [])
    test_images, test_labels = split_tensors(dataset.eval_splits()[1])
    assert torch.equal(test_images, torch.from_numpy(written["test_batch"][0]))
    assert torch.equal(dataset.pretrain_tensor(), train_images)
    assert dataset.class_names[3] == "class3" and dataset.image_size == 32
    assert dataset.augment_defaults() == {"jitter_strength": 0.5, "blur": False}
    mean, std = float_stats(train_images)
    assert dataset.mean == pytest.approx(mean.tolist(), abs=1e-9)


def test_cifar10_missing_or_corrupted_files_are_user_errors(tmp_path, monkeypatch):
    with pytest.raises(simclr.UserError) as missing:
        simclr.create("dataset", "cifar10", root=str(tmp_path))
    message = str(missing.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "data_batch_1" in message
    assert "download: true" in message and "cifar-10-python.tar.gz" in message
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(simclr.UserError, match=r"missing: test_batch\)"):
        simclr.create("dataset", "cifar10", root=str(tmp_path))
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"")
    with pytest.raises(simclr.UserError, match="md5"):  # the real integrity check rejects the tiny files
        simclr.create("dataset", "cifar10", root=str(tmp_path))
    # the message names the files that fail it (here, as if the others were the originals)
    monkeypatch.setattr(files_module, "check_integrity", lambda path, md5=None: not path.endswith("test_batch"))
    with pytest.raises(simclr.UserError, match=r"failed torchvision's md5 check: test_batch \(corrupted"):
        simclr.create("dataset", "cifar10", root=str(tmp_path))


STL_COUNTS = {"train": 3, "test": 2, "unlabeled": 4}


def write_stl10(root: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """STL-10's binary files: images column-major per channel, labels 1..10 as bytes."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    written, index = {}, 0
    for split, count in STL_COUNTS.items():
        images = np.stack([pattern(index + i, 96) for i in range(count)])
        index += count
        stored = np.ascontiguousarray(images.transpose(0, 1, 3, 2))  # STL-10 stores columns first
        (folder / f"{split}_X.bin").write_bytes(stored.tobytes())
        labels = None
        if split != "unlabeled":
            labels = (np.arange(count) * 3 + len(written)) % 10
            (folder / f"{split}_y.bin").write_bytes((labels + 1).astype(np.uint8).tobytes())
        written[split] = (images, labels)
    (folder / "class_names.txt").write_text("\n".join(f"stl{k}" for k in range(10)) + "\n")
    return written


@pytest.mark.parametrize("pretrain_on_train", [False, True])
def test_stl10_loads_real_format_files(tmp_path, monkeypatch, pretrain_on_train):
    written = write_stl10(tmp_path)
    monkeypatch.setattr(stl10_module, "check_integrity", exists_only)  # tiny files, other md5s
    dataset = simclr.create("dataset", "stl10", root=str(tmp_path), pretrain_on_train=pretrain_on_train)
    train, test = dataset.eval_splits()
    for split, (images, labels) in ((train, written["train"]), (test, written["test"])):
        got_images, got_labels = split_tensors(split)
        assert torch.equal(got_images, torch.from_numpy(images)) and got_labels.tolist() == labels.tolist()
    pretrain_images, pretrain_labels = split_tensors(dataset.pretrain_split())
    expected = [written["unlabeled"][0]] + ([written["train"][0]] if pretrain_on_train else [])
    assert torch.equal(pretrain_images, torch.from_numpy(np.concatenate(expected)))
    assert torch.equal(dataset.pretrain_tensor(), pretrain_images)
    assert pretrain_labels[:4].tolist() == [-1] * 4
    assert dataset.class_names[0] == "stl0" and dataset.image_size == 96
    assert dataset.augment_defaults() == {"jitter_strength": 1.0, "blur": True}
    mean, _ = float_stats(torch.from_numpy(written["train"][0]))
    assert dataset.mean == pytest.approx(mean.tolist(), abs=1e-9)


def test_stl10_missing_or_corrupted_files_are_user_errors(tmp_path):
    with pytest.raises(simclr.UserError) as missing:
        simclr.create("dataset", "stl10", root=str(tmp_path))
    message = str(missing.value)
    assert str(tmp_path / "stl10_binary") in message and "train_X.bin" in message
    assert "pre-training also reads unlabeled_X.bin (an evaluation does not)" in message
    assert "set data.dataset.root to the folder that holds stl10_binary/" in message.lower()
    assert "download: true" in message and "stl10_binary.tar.gz" in message
    write_stl10(tmp_path)
    with pytest.raises(simclr.UserError, match="md5"):
        simclr.create("dataset", "stl10", root=str(tmp_path))
    with pytest.raises(simclr.UserError, match="set data.dataset.root to the folder above it"):
        simclr.create("dataset", "stl10", root=str(tmp_path / "stl10_binary"))  # the files' own folder


def test_stl10_evaluates_without_the_unlabelled_file_and_checks_only_what_it_reads(tmp_path, monkeypatch):
    """A laptop evaluating an STL-10 run needs the labelled files, not the 2.5 GB unlabelled one."""
    written = write_stl10(tmp_path)
    (tmp_path / "stl10_binary" / "unlabeled_X.bin").unlink()
    checked = []
    monkeypatch.setattr(stl10_module, "check_integrity", lambda path, md5=None: checked.append(Path(path).name) or True)
    monkeypatch.setattr(stl10_module._STL10, "_verified", set())
    dataset = simclr.create("dataset", "stl10", root=str(tmp_path))
    assert split_tensors(dataset.eval_splits()[1])[1].tolist() == written["test"][1].tolist()
    assert split_tensors(dataset.eval_splits()[0])[1].tolist() == written["train"][1].tolist()
    assert "unlabeled_X.bin" not in checked and {"train_X.bin", "test_X.bin"} <= set(checked)
    with pytest.raises(simclr.UserError, match=r"missing: unlabeled_X.bin"):
        dataset.pretrain_split()


def test_every_builtin_dataset_is_registered():
    assert {"cifar10", "stl10", "image_folder", "digits", "synthetic"} <= set(simclr.names("dataset"))


def test_a_dataset_whose_images_break_its_image_size_is_a_plugin_error():
    from simclr.data import InMemoryImageDataset, TensorSplit, check_split_images

    class Declares33(InMemoryImageDataset):
        image_size = 33  # but its images are 32 px
        class_names: list[str] = []

    dataset = Declares33(TensorSplit(torch.zeros(4, 3, 32, 32, dtype=torch.uint8)))
    with pytest.raises(simclr.PluginError, match=r"pre-training split are torch.uint8 \[3, 32, 32\], but with "):
        check_split_images(dataset, dataset.pretrain_split(), "pre-training", "mine")
    dataset.image_size = 32
    check_split_images(dataset, dataset.pretrain_split(), "pre-training", "mine")
    floats = InMemoryImageDataset(TensorSplit(torch.zeros(4, 3, 32, 32, dtype=torch.uint8)))
    floats.image_size = 32
    floats.pretrain = [(torch.zeros(3, 32, 32), -1)]
    with pytest.raises(simclr.PluginError, match=r"dataset 'mine' .* are torch.float32 \[3, 32, 32\]"):
        check_split_images(floats, floats.pretrain_split(), "pre-training", "mine")


def test_training_checks_the_pretraining_images_against_the_image_size(tmp_path, monkeypatch):
    from simclr import config
    from simclr.trainer import Trainer

    experiment = config.experiment_from_dict(
        {
            "data": {"dataset": {"name": "synthetic", "image_size": 16, "count": 64}, "batch_size": 32},
            "model": {"backbone": {"name": "small_resnet"}},
            "loss": {"name": "nt_xent"},
            "optimizer": {"name": "adam"},
            "train": {"epochs": 1, "device": "cpu"},
        }
    )
    get_item = simclr.data.TensorSplit.__getitem__
    monkeypatch.setattr(simclr.data.TensorSplit, "__getitem__", lambda self, i: (get_item(self, i)[0][:, :15], -1))
    with pytest.raises(simclr.PluginError, match=r"dataset 'synthetic' .*uint8 \[3, 15, 16\], but with image_size 16"):
        Trainer(experiment, tmp_path / "run", show_progress=False)
    assert not (tmp_path / "run").exists()


def test_image_folder_warns_when_test_images_are_training_images(tmp_path, caplog):
    for label, colour in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
        for i in range(2):
            save(tmp_path / "labelled" / label / f"{i}.png", Image.new("RGB", (8, 8), colour))
    same = str(tmp_path / "labelled")
    with caplog.at_level("WARNING", logger="simclr"):
        simclr.create("dataset", "image_folder", image_size=8, eval_train=same, eval_test=same).eval_splits()
    assert "4 of the 4 eval_test images are eval_train images too" in caplog.text
    caplog.clear()
    shutil.copytree(tmp_path / "labelled", tmp_path / "test")
    with caplog.at_level("WARNING", logger="simclr"):
        simclr.create(
            "dataset", "image_folder", image_size=8, eval_train=same, eval_test=str(tmp_path / "test")
        ).eval_splits()
    assert "eval_train images too" not in caplog.text  # copies are other files: not what the check can tell


def test_image_folder_says_why_it_skips_files_and_reads_float_images(tmp_path, monkeypatch, caplog):
    labelled = tmp_path / "labelled"
    save(labelled / "cat" / "big.png", Image.new("RGB", (40, 20), (200, 0, 0)))
    save(labelled / "cat" / "small.png", Image.new("RGB", (8, 8), (200, 0, 0)))
    floats = np.full((8, 8), 0.5, dtype=np.float32)
    floats[0, 0], floats[0, 1] = np.nan, np.inf  # such pixels are 0, not a reason to read the image as 0-255
    save(labelled / "dog" / "float.tif", Image.fromarray(floats, mode="F"))
    (labelled / "dog" / "text.png").write_text("no image")
    save(labelled / "loose.png", Image.new("RGB", (8, 8)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # PIL refuses images of more than twice that: 40x20
    folders = {split: str(labelled) for split in ("eval_train", "eval_test")}
    with caplog.at_level(logging.WARNING, logger="simclr"):
        train, _ = simclr.create("dataset", "image_folder", image_size=8, **folders).eval_splits()
    message = next(r.getMessage() for r in caplog.records if "skipped" in r.getMessage())
    # counted in both splits (the same folder here)
    assert message.startswith(f"image_folder: eval_train {labelled}, eval_test {labelled}: skipped 6 files: ")
    assert f"2 outside a class folder (e.g. {labelled / 'loose.png'}" in message
    assert "2 too large for PIL (over twice Image.MAX_IMAGE_PIXELS" in message and "big.png" in message
    assert "2 not images (no format PIL recognises) (e.g." in message and "text.png" in message
    assert train.labels.tolist() == [0, 1]  # small.png and float.tif
    assert train.images[1].unique().tolist() == [0, 128]  # 0.5 of a float image scaled to [0, 1], not black


def test_training_reports_a_mistyped_train_folder_before_decoding_the_labelled_ones(tmp_path, monkeypatch):
    """`simclr train` with a wrong train path and good labelled folders fails on the path without decoding one
    labelled image (they used to be read first, however many there were)."""
    from simclr.config import experiment_from_dict
    from simclr.plugins.datasets import image_folder
    from simclr.trainer import Trainer

    for label, colour in (("cat", (200, 0, 0)), ("dog", (0, 200, 0))):
        for split in ("eval_train", "eval_test"):
            save(tmp_path / split / label / "0.png", Image.new("RGB", (12, 12), colour))
    decoded = []
    decode = image_folder._decode
    monkeypatch.setattr(image_folder, "_decode", lambda path, *args: decoded.append(path) or decode(path, *args))
    folders = {"train": str(tmp_path / "trian"), "eval_train": str(tmp_path / "eval_train")}
    experiment = experiment_from_dict(
        {
            "data": {
                "dataset": {
                    "name": "image_folder",
                    "image_size": 8,
                    **folders,
                    "eval_test": str(tmp_path / "eval_test"),
                }
            },
            "model": {"backbone": {"name": "small_resnet"}},
            "loss": {"name": "nt_xent"},
            "optimizer": {"name": "adam"},
            "train": {"device": "cpu", "callbacks": []},
            "eval": {"after_train": True},
        }
    )
    with pytest.raises(simclr.UserError, match=r"data.dataset.train is .*trian, which is not there"):
        Trainer(experiment, tmp_path / "run", show_progress=False)
    assert decoded == [] and not (tmp_path / "run").exists()


def test_a_very_large_image_is_read_with_a_warning_naming_it(tmp_path, monkeypatch, caplog, recwarn):
    """Between PIL's decompression-bomb threshold and twice it, PIL warns once per process without naming the
    file; image_folder names each such file instead (above twice it, the file is skipped)."""
    save(tmp_path / "photos" / "wide.png", Image.new("RGB", (30, 10), (200, 0, 0)))  # 300 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)
    with caplog.at_level(logging.WARNING, logger="simclr"):
        dataset = simclr.create("dataset", "image_folder", train=str(tmp_path / "photos"), image_size=8)
        assert len(dataset.pretrain_split()) == 1
    assert f"{tmp_path / 'photos' / 'wide.png'} has 300 pixels, more than PIL's decompression-bomb" in caplog.text
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # PIL's way to turn the guard off: every image is read
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="simclr"):
        dataset = simclr.create("dataset", "image_folder", train=str(tmp_path / "photos"), image_size=8)
        assert len(dataset.pretrain_split()) == 1
    assert not caplog.records
