"""A trained network in Python, for analysis beyond `simclr eval` (a notebook, another probe, a plot of features):
``simclr.load_pretrained(RUN_DIR or CHECKPOINT)``. It needs what an evaluation needs: simclr and the plugin of the
run's backbone (and, for a checkpoint older than its stored normalisation, of its dataset)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from simclr.checkpoint import load_checkpoint
from simclr.evaluate import build_encoder, resolve_eval_device, resolve_target, stored_experiment, trained_normalisation
from simclr.model import SimCLRModel
from simclr.schema import Experiment
from simclr.views import normalize


@dataclass
class Pretrained:
    """The network of a checkpoint, in eval mode, with what its input must be: images of ``image_size`` pixels,
    normalised with ``mean`` and ``std`` (what :meth:`features` does)."""

    model: SimCLRModel
    experiment: Experiment
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    epoch: int
    checkpoint: Path

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images [B, 3, H, W] (or floats already scaled to [0, 1]) as the network's input, on its device.
        Other integer types, and floats well above 1 (0-255 values as floats), are refused: they would silently
        give other features (a resize's overshoot just above 1 is not)."""
        if images.dtype != torch.uint8:
            if not images.is_floating_point():
                raise ValueError(f"images of dtype {images.dtype}; give uint8 (0-255) or floats scaled to [0, 1]")
            if images.numel() and not float(images.max()) <= FLOAT_IMAGE_MAX:  # NaN fails this too
                raise ValueError(
                    f"float images with values up to {float(images.max()):g}; give floats scaled to [0, 1] "
                    "(divide by 255), or the uint8 images"
                )
        images = images.to(self.device)
        if images.dtype != torch.uint8:
            images = images.mul(255)  # normalize() scales by 1/255
        return normalize(images, self.mean, self.std)

    @torch.no_grad()
    def features(self, images: torch.Tensor, representation: str = "backbone") -> torch.Tensor:
        """The backbone's features h of ``images`` (the representation `simclr eval` probes), or with
        ``representation="projection"`` the projection head's output g(h) (what the loss saw), float32 [B, D].
        The images must be of the size the network was trained on (for another, call :attr:`model` on
        :meth:`normalise`'s output yourself)."""
        if representation not in ("backbone", "projection"):
            raise ValueError(f"representation must be 'backbone' or 'projection', not {representation!r}")
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, self.image_size, self.image_size):
            size = self.image_size
            raise ValueError(
                f"images of shape {tuple(images.shape)}; the network was trained on [B, 3, {size}, {size}]: resize "
                "them, or call .model on .normalise(images) to use another size on purpose"
            )
        h = self.model.backbone(self.normalise(images)).float()
        return self.model.head(h).float() if representation == "projection" else h


#: the largest value float images may hold: [0, 1], with room for the overshoot of a bicubic resize (up to about
#: 1.06); images of 0-255 values as floats are far above it
FLOAT_IMAGE_MAX = 1.5


def load_pretrained(target: str | Path, device: str = "cpu") -> Pretrained:
    """The network of a run directory (its last checkpoint) or of a checkpoint file, on ``device`` (``auto``:
    CUDA where available), in eval mode. Problems are :class:`simclr.UserError` naming the file."""
    checkpoint, _ = resolve_target(Path(target).expanduser())
    torch_device = resolve_eval_device(device, option="device=")
    state = load_checkpoint(checkpoint, map_location="cpu")
    experiment = stored_experiment(state, checkpoint)
    dataset = functools.cache(experiment.data.dataset.build)  # only for a checkpoint older than what it stores
    image_size = state["image_size"] if "image_size" in state else dataset().image_size
    mean, std = trained_normalisation(state, dataset)
    model = build_encoder(experiment, image_size, state["model"], checkpoint, representation="projection")
    return Pretrained(model.to(torch_device).eval(), experiment, image_size, mean, std, state["epoch"], checkpoint)
