"""Built-in datasets plugin: cifar10, stl10, image_folder, digits, synthetic.

Each factory imports its loader when called, so that loading the plugin does not import torchvision or
scikit-learn.
"""

import simclr
from simclr.data import ImageDataset
from simclr.plugins.datasets.params import CIFAR10Params, DigitsParams, ImageFolderParams, STL10Params, SyntheticParams


def build_cifar10(params: CIFAR10Params) -> ImageDataset:
    from simclr.plugins.datasets.cifar import CIFAR10Dataset

    return CIFAR10Dataset(params)


def build_stl10(params: STL10Params) -> ImageDataset:
    from simclr.plugins.datasets.stl10 import STL10Dataset

    return STL10Dataset(params)


def build_image_folder(params: ImageFolderParams) -> ImageDataset:
    from simclr.plugins.datasets.image_folder import ImageFolderDataset

    return ImageFolderDataset(params)


def build_digits(params: DigitsParams) -> ImageDataset:
    from simclr.plugins.datasets.digits import DigitsDataset

    return DigitsDataset(params)


def build_synthetic(params: SyntheticParams) -> ImageDataset:
    from simclr.plugins.datasets.synthetic import SyntheticDataset

    return SyntheticDataset(params)


@simclr.hookimpl
def simclr_register_datasets(registry: simclr.Registrar) -> None:
    registry.add("cifar10", build_cifar10, CIFAR10Params, "CIFAR-10 (torchvision's files), 32 px")
    registry.add("stl10", build_stl10, STL10Params, "STL-10 (torchvision's files), 96 px")
    registry.add("image_folder", build_image_folder, ImageFolderParams, "your own images, in folders")
    registry.add("digits", build_digits, DigitsParams, "scikit-learn's 1,797 8x8 digits, upscaled; offline")
    registry.add("synthetic", build_synthetic, SyntheticParams, "random images, for tests and benchmarks")
