"""The params models of the built-in backbones (kept apart from the networks, which import torchvision)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ResNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cifar_stem: bool | None = Field(
        None, description="3x3 stride-1 first conv and no max-pool (default: on for images of 64 px or less)"
    )
    zero_init_residual: bool = Field(False, description="start each residual branch's last BatchNorm at zero")


class SmallResNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(16, ge=1, description="channels of stage 1 (then 2x, 4x); feature_dim = 4 x width")
    depth: int = Field(1, ge=1, description="basic blocks per stage (3 stages)")
    zero_init_residual: bool = Field(False, description="start each residual branch's last BatchNorm at zero")
