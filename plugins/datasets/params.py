"""The params models of the built-in datasets (kept apart from the loaders, which import torchvision and
scikit-learn: listing or validating components stays fast)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from simclr import DataPath


class CIFAR10Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: DataPath = Field(Path("data"), description="folder holding cifar-10-batches-py/")
    download: bool = Field(False, description="fetch cifar-10-python.tar.gz (163 MB) if missing")


class STL10Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: DataPath = Field(Path("data"), description="folder holding stl10_binary/")
    download: bool = Field(False, description="fetch stl10_binary.tar.gz (2.6 GB) if missing")
    pretrain_on_train: bool = Field(False, description="pre-train on unlabeled + train instead of unlabeled")


class ImageFolderParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    train: DataPath | None = Field(
        None, description="folder of images to pre-train on (searched recursively); an evaluation needs none"
    )
    eval_train: DataPath | None = Field(None, description="labelled probe images: <folder>/<class>/...")
    eval_test: DataPath | None = Field(None, description="labelled test images, classes as in eval_train")
    image_size: int = Field(96, ge=8, description="images are resized and centre-cropped to this")
    bit_depth: int = Field(
        16,
        ge=1,
        le=16,
        description="significant bits of 16-bit greyscale images: 2**bit_depth - 1 is white (12 for the 12-bit "
        "data many cameras store in 16 bits); brighter values are clipped. 16-bit colour or grey+alpha files are "
        "read by PIL as 8-bit, whatever this says",
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> ImageFolderParams:
        if (self.eval_train is None) != (self.eval_test is None):
            raise ValueError("give both eval_train and eval_test, or neither")
        if self.train is None and self.eval_train is None:
            raise ValueError("give train (the images to pre-train on), or eval_train and eval_test, or all three")
        return self


class DigitsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_size: int = Field(32, ge=8, description="side length the 8x8 digits are upscaled to (bilinear)")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="held-out share of each class (seed 0)")


class SyntheticParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_size: int = Field(32, ge=1)
    count: int = Field(1024, ge=2, description="number of images")
    num_classes: int = Field(10, ge=1, description="labels are drawn uniformly from this many classes")
    seed: int = 0
