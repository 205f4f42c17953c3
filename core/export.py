"""Exporting a trained backbone alone, for fine-tuning elsewhere.

When the backbone's weights have the parameter names and shapes of a torchvision ResNet (the built-in resnet18 /
resnet50 do), the file's keys are torchvision's: ``torchvision.models.resnet18()`` loads it with
``strict=False``, only ``fc.*`` missing. A CIFAR-stem backbone (3x3 stride-1 first convolution, no max-pool)
needs that stem swapped in first::

    model = torchvision.models.resnet18()
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()

Any other backbone is exported as simclr's own backbone state_dict (with a note saying how to rebuild it).
The file's name says its format: ``.safetensors`` (with the metadata below: backbone, architecture, stem,
feature_dim, epoch, image_size and the input normalisation's mean and std), or ``.pt`` / ``.pth`` / ``.bin``
for a plain ``torch.save`` of the state_dict. An existing file is replaced only when asked.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from simclr.atomic import atomic_path
from simclr.checkpoint import load_checkpoint
from simclr.errors import UserError

#: torchvision ResNets a backbone's weights are matched against, smallest first
TORCHVISION_RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
TORCH_SUFFIXES = (".pt", ".pth", ".bin")


@dataclass
class ExportResult:
    path: Path
    format: str  # "safetensors" | "torch"
    architecture: str | None  # torchvision name, None when not torchvision-compatible
    stem: str | None  # "cifar" | "imagenet", None when not torchvision-compatible
    note: str


def torchvision_resnet(architecture: str, stem: str, device: torch.device | str | None = None) -> nn.Module:
    """torchvision's ``architecture`` with the CIFAR stem swapped in when ``stem == "cifar"`` (fc kept)."""
    import torchvision

    with torch.device(device or "cpu"):
        model = getattr(torchvision.models, architecture)()
        if stem == "cifar":
            model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, 1, 1, bias=False)
            model.maxpool = nn.Identity()
    return model


def _stem_prefix(state: dict[str, torch.Tensor]) -> str | None:
    """The prefix before the top-level ``conv1.weight`` (the shortest key ending in it), e.g. ``"net."``."""
    stems = sorted((k for k in state if k.endswith("conv1.weight")), key=len)
    return stems[0][: -len("conv1.weight")] if stems else None


def match_torchvision(state: dict[str, torch.Tensor]) -> tuple[str, str, dict[str, torch.Tensor]] | None:
    """(architecture, stem, state renamed to torchvision's keys) when ``state`` has exactly the names and shapes
    of a torchvision ResNet without ``fc``; None otherwise."""
    prefix = _stem_prefix(state)
    if prefix is None or not all(k.startswith(prefix) for k in state):
        return None
    renamed = {k[len(prefix) :]: v for k, v in state.items() if not k[len(prefix) :].startswith("fc.")}
    stem = "cifar" if tuple(renamed["conv1.weight"].shape[-2:]) == (3, 3) else "imagenet"
    for architecture in TORCHVISION_RESNETS:
        reference = torchvision_resnet(architecture, stem, device="meta").state_dict()
        expected = {k: tuple(v.shape) for k, v in reference.items() if not k.startswith("fc.")}
        if expected == {k: tuple(v.shape) for k, v in renamed.items()}:
            return architecture, stem, renamed
    return None


def _choose_format(out: Path) -> str:
    if out.suffix in TORCH_SUFFIXES:
        return "torch"
    if out.suffix != ".safetensors":
        raise UserError(
            f"--out {out}: the name's suffix sets the format: .safetensors, or {' / '.join(TORCH_SUFFIXES)} "
            "for torch.save"
        )
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        message = f"{out}: writing .safetensors needs the safetensors package (pip install safetensors)"
        raise UserError(message) from None
    return "safetensors"


def export_backbone(target: Path, out: Path, overwrite: bool = False) -> ExportResult:
    """Write the backbone of run directory or checkpoint ``target`` to ``out`` (see the module docstring)."""
    fmt = _choose_format(out)
    if out.exists() and not overwrite:
        raise UserError(f"--out {out} exists; pass --overwrite to replace it, or choose another file")
    state = load_checkpoint(target, map_location="cpu")
    weights = state.get("model")
    config = state.get("config") or {}
    backbone = {k[len("backbone.") :]: v for k, v in (weights or {}).items() if k.startswith("backbone.")}
    if not backbone:
        raise UserError(f"{target}: the checkpoint holds no backbone weights; was it written by simclr?")
    section = config.get("model", {}).get("backbone", {})
    name = section.get("name", "?")
    match = match_torchvision(backbone)
    if match:
        architecture, stem, tensors = match
        swap = ", after swapping in the CIFAR stem (conv1 3x3 stride 1, maxpool Identity)" if stem == "cifar" else ""
        note = (
            f"keys of torchvision.models.{architecture}(){swap}; "
            "load with load_state_dict(..., strict=False): only fc.* is missing"
        )
    else:
        architecture, stem, tensors = None, None, backbone
        params = {k: v for k, v in section.items() if k != "name"}
        note = (
            f"backbone '{name}' is not a torchvision architecture: the file holds simclr's own backbone state_dict; "
            f"rebuild it with simclr.create('backbone', '{name}', image_size, **{params!r}) and load_state_dict"
        )
    normalisation = state.get("normalisation")
    if isinstance(normalisation, dict) and state.get("image_size"):
        mean, std = (", ".join(f"{v:.4f}" for v in normalisation[key]) for key in ("mean", "std"))
        note += (
            f". Inputs as in training: {state['image_size']} px images scaled to [0, 1], "
            f"normalised with mean ({mean}) and std ({std})"
        )
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    metadata = {
        "format": "simclr-backbone",
        "backbone": json.dumps(section),
        "torchvision_architecture": architecture or "",
        "stem": stem or "",
        "feature_dim": str(state.get("feature_dim", "")),
        "epoch": str(state.get("epoch", "")),
        "image_size": str(state.get("image_size", "")),
        "normalisation": json.dumps(normalisation) if isinstance(normalisation, dict) else "",
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}; choose another --out file") from None
    try:
        with atomic_path(out) as tmp:
            if fmt == "safetensors":
                from safetensors.torch import save_file

                save_file(tensors, str(tmp), metadata=metadata)
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(tmp, 0o666 & ~umask)  # safetensors writes files only their owner can read
            else:
                torch.save(tensors, tmp)
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror or exc}; choose another --out file") from None
    return ExportResult(out, fmt, architecture, stem, note)
