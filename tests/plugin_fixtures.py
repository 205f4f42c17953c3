"""Fake plugin distributions written to a temp folder: a real .dist-info with entry points, and its module."""

from __future__ import annotations

import importlib.metadata
import textwrap
from pathlib import Path


def make_distribution(
    root: Path, dist_name: str, modules: dict[str, str], version: str = "1.0", monkeypatch=None
) -> list:
    """Write modules and a `<dist>.dist-info` under `root` (on sys.path for the test); return its simclr entry points.

    ``modules`` maps entry-point name -> module source; each module is named ``<dist>_<entry point>``.
    """
    root.mkdir(parents=True, exist_ok=True)
    safe = dist_name.replace("-", "_")
    info = root / f"{safe}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: {version}\n")
    lines = ["[simclr]"]
    for ep_name, source in modules.items():
        module = f"{safe}_{ep_name}"
        (root / f"{module}.py").write_text(textwrap.dedent(source))
        lines.append(f"{ep_name} = {module}")
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    if monkeypatch is not None:
        monkeypatch.syspath_prepend(str(root))
    return list(importlib.metadata.Distribution.at(info).entry_points)


def builtin_entry_points() -> list:
    return list(importlib.metadata.entry_points(group="simclr"))


GOOD_LOSS = """
import torch
from pydantic import BaseModel, ConfigDict, Field
import simclr

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scale: float = Field(1.0, gt=0)

class ScaledDistance(torch.nn.Module):
    def __init__(self, params):
        super().__init__()
        self.scale = params.scale
    def forward(self, z1, z2):
        return self.scale * (z1 - z2).pow(2).mean()

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("scaled_distance", ScaledDistance, Params, "mean squared distance of the two views")
"""

RAISES_AT_IMPORT = """
raise ImportError("this plugin needs a package that is not installed")
"""

RAISES_IN_HOOK = """
from pydantic import BaseModel, ConfigDict
import simclr

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("half_registered", lambda p: None, Params, "never visible")
    raise RuntimeError("registration exploded")
"""

DUPLICATE_NT_XENT = """
import torch
import simclr
from pydantic import BaseModel, ConfigDict

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("nt_xent", lambda p: torch.nn.Identity(), Params, "an impostor")
"""

WRONG_TYPE = """
import simclr
from pydantic import BaseModel, ConfigDict

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("not_a_module", lambda p: "a string", Params, "returns the wrong type")
"""

LAX_PARAMS = """
import simclr
from pydantic import BaseModel

class Params(BaseModel):
    x: int = 1

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("lax", lambda p: None, Params, "params model without extra=forbid")
"""

RAISES_IN_LIFECYCLE = """
import simclr

@simclr.hookimpl
def simclr_on_log(run, record):
    raise ValueError("logger is broken")
"""

CLASHING_MINERS = """
import simclr

def select_nothing(sim, positive_mask, margin):
    return positive_mask & False

@simclr.hookimpl
def simclr_register_miners(registry):
    registry.add("lenient", lambda p: select_nothing, simclr.NoParams, "registered alongside the clash")
    registry.add("hardest", lambda p: select_nothing, simclr.NoParams, "clashes with the built-in miner")

@simclr.hookimpl
def simclr_on_log(run, record):
    raise AssertionError("a rejected plugin's lifecycle hooks must not run")
"""

SHARED_LOSS = """
import torch
import simclr

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("shared", lambda p: torch.nn.Identity(), simclr.NoParams, "claimed by two plugins")
"""

TWICE = """
import torch
import simclr

@simclr.hookimpl
def simclr_register_miners(registry):
    registry.add("unique", lambda p: torch.logical_not, simclr.NoParams, "registered once")

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("echo", lambda p: torch.nn.Identity(), simclr.NoParams, "first")
    registry.add("echo", lambda p: torch.nn.Identity(), simclr.NoParams, "second")
"""

BAD_REGISTRATIONS = {
    "negative_default": """
from pydantic import BaseModel, ConfigDict, Field
import simclr, torch

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(-0.5, gt=0)

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("negative", torch.nn.Module, Params)
""",
    "name_field": """
from pydantic import BaseModel, ConfigDict
import simclr, torch

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "inner"

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("named", torch.nn.Module, Params)
""",
    "default_loss": """
import simclr, torch

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("always_on", torch.nn.Module, default=True)
""",
    "spaced_name": """
import simclr, torch

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("bad name!", torch.nn.Module)
""",
}

#: a dataset whose root's default is a path with ~, as a user would write it
HOME_DEFAULT = """
from pathlib import Path
from pydantic import BaseModel, ConfigDict
import simclr

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: simclr.DataPath = "~/scans"

@simclr.hookimpl
def simclr_register_datasets(registry):
    registry.add("scans", lambda params: params, Params)
"""

#: defaults that only the model's own validators reject, and one naming the plugin's own miner
VALIDATED_DEFAULTS = {
    "after_validator": """
from pydantic import BaseModel, ConfigDict, field_validator
import simclr, torch

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t: float = -1.0

    @field_validator("t")
    @classmethod
    def _positive(cls, value):
        if value <= 0:
            raise ValueError("t must be positive")
        return value

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("checked_t", torch.nn.Module, Params)
""",
    "before_validator": """
from pydantic import BaseModel, ConfigDict, field_validator
import simclr, torch

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sizes: tuple[int, ...] = (1, 2)

    @field_validator("sizes", mode="before")
    @classmethod
    def _from_text(cls, value):
        return tuple(int(part) for part in value.split(","))  # the default tuple has no split

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("parsed", torch.nn.Module, Params)
""",
    "before_validator_beside_a_required_field": """
from pydantic import BaseModel, ConfigDict, field_validator
import simclr, torch

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scale: float
    sizes: tuple[int, ...] = (1, 2)

    @field_validator("sizes", mode="before")
    @classmethod
    def _from_text(cls, value):
        return tuple(int(part) for part in value.split(","))

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("parsed_too", torch.nn.Module, Params)
""",
    "aliases": """
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
import simclr, torch

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    temp: float = Field(0.5, alias="temperature")
    margin: float = Field(1.0, validation_alias=AliasChoices("margin", "m"))
    scaled: float = Field(default_factory=lambda data: 2 * data["temp"])

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("aliased", torch.nn.Module, Params)
""",
    "needs_low": """
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator
import simclr, torch

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    low: float
    high: float = 1.0

    @field_validator("high")
    @classmethod
    def _above_low(cls, value, info: ValidationInfo):
        if value < info.data["low"]:  # a KeyError while low is absent, as when only the defaults are checked
            raise ValueError("high must be at least low")
        return value

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("ranged", torch.nn.Module, Params)
""",
    "own_miner": """
from typing import Annotated, Any
from pydantic import BaseModel, ConfigDict
import simclr, torch

class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    miner: Annotated[str | dict[str, Any], simclr.ComponentRef("miner")] | None = "everything"

@simclr.hookimpl
def simclr_register_miners(registry):
    registry.add("everything", lambda params: lambda sim, positive_mask, margin: ~positive_mask)

@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("mined", torch.nn.Module, Params)
""",
}

#: components with the mistakes plugin authors make, each found before a run writes anything
PLUGIN_MISTAKES = """
import torch
from pydantic import BaseModel, ConfigDict
import simclr
from simclr.data import InMemoryImageDataset, TensorSplit


class WrongDim(torch.nn.Module):
    feature_dim = 16

    def __init__(self, params, image_size):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(x).mean((2, 3))  # 8 features, not 16


class Spatial(WrongDim):
    feature_dim = 8

    def forward(self, x):
        return self.conv(x)  # [B, 8, H, W]: not pooled


class Float64(WrongDim):
    feature_dim = 8

    def forward(self, x):
        return self.conv(x).mean((2, 3)).double()


class SpatialWhileTraining(WrongDim):
    feature_dim = 8

    def forward(self, x):
        features = self.conv(x).mean((2, 3))
        return features[:, :, None, None] if self.training else features  # [B, 8, 1, 1] in training only


def no_lr(params, model):  # param groups without "lr": the schedule could not set it
    class Constant(torch.optim.Optimizer):
        def __init__(self, parameters):
            super().__init__(parameters, {})

    return Constant(model.parameters())


class Sizeless(InMemoryImageDataset):
    def __init__(self, params):
        super().__init__(TensorSplit(torch.zeros(64, 3, 16, 16, dtype=torch.uint8)))


class BatchLimit(torch.nn.Module):
    def forward(self, z1, z2):
        raise ValueError(f"batch {len(z1)} > batch_limit 8")


class AlwaysNaN(torch.nn.Module):
    def forward(self, z1, z2):
        return (z1 * z2).sum() * float("nan")


class WrongArguments:
    def __init__(self, params):
        pass

    @simclr.hookimpl
    def simclr_on_log(self, run, rec):
        pass


class Labelled(InMemoryImageDataset):
    image_size = 16

    def __init__(self, train_labels, test_images):
        images = torch.zeros(64, 3, 16, 16, dtype=torch.uint8)
        train = TensorSplit(images[:32], torch.tensor(train_labels))
        test = TensorSplit(test_images, torch.arange(len(test_images)) % 2)
        super().__init__(TensorSplit(images), (train, test))
        self.class_names = ["a", "b"]


def unlabelled(params):  # labels -1 in the labelled splits
    return Labelled([-1] * 32, torch.zeros(8, 3, 16, 16, dtype=torch.uint8))


def one_class(params):
    return Labelled([0] * 32, torch.zeros(8, 3, 16, 16, dtype=torch.uint8))


def small_test(params):  # test images of another size than image_size
    return Labelled([0, 1] * 16, torch.zeros(8, 3, 12, 12, dtype=torch.uint8))


@simclr.hookimpl
def simclr_register_backbones(registry):
    registry.add("wrong_dim", WrongDim)
    registry.add("spatial", Spatial)
    registry.add("float64", Float64)
    registry.add("spatial_while_training", SpatialWhileTraining)


@simclr.hookimpl
def simclr_register_optimizers(registry):
    registry.add("no_lr", no_lr)


@simclr.hookimpl
def simclr_register_losses(registry):
    registry.add("batch_limit", lambda params: BatchLimit())
    registry.add("always_nan", lambda params: AlwaysNaN())


@simclr.hookimpl
def simclr_register_callbacks(registry):
    registry.add("wrong_arguments", WrongArguments)


@simclr.hookimpl
def simclr_register_datasets(registry):
    registry.add("unlabelled", unlabelled)
    registry.add("one_class", one_class)
    registry.add("small_test", small_test)
    registry.add("sizeless", Sizeless)
"""
