"""The experiment schema: a typed pydantic model of an experiment file, ``extra="forbid"`` everywhere.

Component sections (``{name: ..., <params>}``) accept any keys here; :mod:`simclr.config` then validates each
against the params model of the component it names.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_serializer


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ComponentSection(BaseModel):
    """``{name: <component>, <params of that component>...}``; ``kind`` says which registry to look in."""

    model_config = ConfigDict(extra="allow")
    kind: ClassVar[str]
    name: str = Field(description="name of an installed component (see `simclr plugins list`)")
    _params: BaseModel | None = PrivateAttr(default=None)

    @property
    def params(self) -> BaseModel:
        if self._params is None:
            raise RuntimeError(f"{self.kind} section '{self.name}' has not been resolved")
        return self._params

    def raw_params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def build(self, *context: Any) -> Any:
        """Build the component through the registry from the validated params."""
        from simclr.plugin_manager import plugin_system

        return plugin_system().registry.get(self.kind, self.name).build(self.params, *context)

    @model_serializer(mode="plain")
    def _serialize(self) -> dict[str, Any]:
        if self._params is None:
            return {"name": self.name, **self.raw_params()}
        return {"name": self.name, **self._params.model_dump(mode="json")}


class DatasetSection(ComponentSection):
    kind: ClassVar[str] = "dataset"


class BackboneSection(ComponentSection):
    kind: ClassVar[str] = "backbone"


class LossSection(ComponentSection):
    kind: ClassVar[str] = "loss"


class OptimizerSection(ComponentSection):
    kind: ClassVar[str] = "optimizer"


class CallbackSection(ComponentSection):
    kind: ClassVar[str] = "callback"


def is_stored(info: ValidationInfo) -> bool:
    """Whether the config being validated is a run's stored one (its config.yaml or checkpoint), which checks
    added after the run was made must not lock out of evaluation or resume."""
    return bool(info.context and info.context.get("stored"))


class AugmentConfig(Strict):
    """The SimCLR view pipeline. Fields left unset (null) take the dataset's default, then the paper's."""

    backend: Literal["auto", "cpu", "batched"] = Field(
        "auto",
        description="cpu: per-image torchvision transforms in DataLoader workers; batched: whole uint8 batches "
        "augmented on the training device; auto: batched",
    )
    crop_scale: tuple[float, float] | None = Field(None, description="random resized crop area range (0.08, 1)")
    crop_ratio: tuple[float, float] = Field((3 / 4, 4 / 3), description="random resized crop aspect range")
    flip_p: float = Field(0.5, ge=0, le=1)
    jitter_strength: float | None = Field(None, ge=0, description="colour jitter strength s (paper: 1.0)")
    jitter_p: float = Field(0.8, ge=0, le=1)
    grayscale_p: float = Field(0.2, ge=0, le=1)
    blur: bool | None = Field(None, description="Gaussian blur; default off for images of 32 px or less")
    blur_p: float = Field(0.5, ge=0, le=1)
    blur_kernel_fraction: float = Field(0.1, gt=0, le=1, description="blur kernel size / image size")
    blur_sigma: tuple[float, float] = Field((0.1, 2.0))

    @field_validator("crop_scale")
    @classmethod
    def _scale_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 < value[0] <= value[1] <= 1:
            raise ValueError("crop_scale must be (low, high) with 0 < low <= high <= 1")
        return value

    @field_validator("crop_ratio", "blur_sigma")
    @classmethod
    def _positive_range(cls, value: tuple[float, float], info: ValidationInfo) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] and not is_stored(info):
            raise ValueError(f"{info.field_name} must be (low, high) with 0 < low <= high")
        return value


class DataConfig(Strict):
    dataset: DatasetSection
    batch_size: int = Field(256, ge=2, description="global batch size (split across ranks when distributed)")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes")
    device_resident: Literal["auto", "always", "never"] = Field(
        "auto", description="keep the uint8 pre-training set on the training device when it fits"
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig)


class ProjectionConfig(Strict):
    layers: int = Field(
        2,
        ge=0,
        description="2: Linear-BN-ReLU-Linear (the paper's); 3 or more: more Linear-BN-ReLU blocks (SimCLRv2 uses "
        "3); 1: one Linear; 0: none (the loss sees the features)",
    )
    hidden_dim: int | None = Field(None, ge=1, description="default: the backbone's feature_dim (2 or more layers)")
    out_dim: int = Field(128, ge=1, description="projection size (1 or more layers)")


class ModelConfig(Strict):
    backbone: BackboneSection
    projection: ProjectionConfig = Field(default_factory=ProjectionConfig)
    sync_batchnorm: bool = Field(
        True,
        description="the paper's global BN when distributed: BatchNorm statistics over the whole global batch "
        "(false: each rank normalises its own share)",
    )


class ScheduleConfig(Strict):
    warmup_epochs: float = Field(10, ge=0, description="linear warm-up from 0, stepped per iteration")
    decay: Literal["cosine", "constant"] = Field("cosine", description="after warm-up: cosine to 0, or flat")
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(
        "none",
        description="effective lr = lr (none), lr*B/256 (linear), lr*sqrt(B) (sqrt), B the global batch",
    )


#: what train.device and --device accept
DEVICE_NAME = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"


class TrainConfig(Strict):
    epochs: int = Field(100, ge=1)
    seed: int = Field(
        0, gt=-(2**32), lt=2**32, description="seeds torch, the data order and the views (|seed| < 2**32)"
    )
    device: str = Field(
        "auto", description="auto | cpu | cuda | cuda:N | mps (under torchrun: auto or cuda, the GPU of LOCAL_RANK)"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 on a GPU with native bf16 (Ampere and later), fp16 on an older one, else fp32"
    )
    channels_last: bool | None = Field(None, description="default: on for CUDA and x86-64 CPUs")
    compile: bool = Field(False, description="torch.compile the model")
    log_every: int = Field(10, ge=1, description="steps between logged records (metrics read from the device)")
    checkpoint_every: int = Field(0, ge=0, description="epochs between numbered checkpoints (0: last.pt only)")
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap steps per epoch (smoke tests)")
    knn_monitor_every: int | None = Field(
        None, ge=0, description="epochs between online kNN checks (0: off; default: 5 on CUDA, off on CPU)"
    )
    callbacks: list[CallbackSection] | None = Field(
        None, description="callbacks to run (default: every installed callback registered as default-on)"
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not DEVICE_NAME.match(value):
            raise ValueError(f"'{value}' is not a device; use {DEVICE_CHOICES}")
        return value


class LinearProbeConfig(Strict):
    C: float = Field(1.0, gt=0, description="inverse L2 regularisation strength")
    max_iter: int = Field(1000, ge=1)
    backend: Literal["sklearn", "torch"] = Field("sklearn", description="scikit-learn lbfgs, or torch L-BFGS")


class EvalConfig(Strict):
    after_train: bool = Field(False, description="run `simclr eval` at the end of `simclr train`")
    batch_size: int = Field(256, ge=1, description="feature-extraction batch size")
    linear: LinearProbeConfig = Field(default_factory=LinearProbeConfig)
    labels_per_class: list[int] = Field([1, 5, 10], description="few-label probe sizes (K images per class)")
    few_label_draws: int = Field(5, ge=1, description="seeded draws averaged for each K")
    knn_k: int = Field(200, ge=1)
    knn_temperature: float = Field(0.1, gt=0)
    baseline: bool = Field(True, description="also probe a randomly initialised backbone")
    representation: Literal["backbone", "projection"] = Field(
        "backbone",
        description="what the probes see: the backbone's features h (the paper's protocol) or the head's output g(h)",
    )

    @field_validator("labels_per_class")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError("every K must be >= 1")
        return value


class Experiment(Strict):
    """A whole experiment file."""

    name: str | None = Field(None, description="run name (default: the file name)")
    data: DataConfig
    model: ModelConfig
    loss: LossSection
    optimizer: OptimizerSection
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("name")
    @classmethod
    def _folder_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        if is_stored(info):
            return value
        if value is not None and (value.strip() in ("", ".", "..") or "/" in value or "\\" in value):
            raise ValueError(
                "the run name names one folder under runs/ (no '/', not '.' or '..'); "
                "to put the run elsewhere, use --out DIR"
            )
        return value
