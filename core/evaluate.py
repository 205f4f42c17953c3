"""Evaluation of a trained run on frozen features: the backbone's (the paper's protocol), or with
``eval.representation: projection`` the projection head's output.

:func:`evaluate_run` loads a checkpoint on whatever device is here, rebuilds the backbone from the stored config,
extracts (or reads cached) features of the dataset's labelled train/test splits, and runs the linear,
few-label and kNN probes on the pre-trained backbone and on a randomly initialised one of the same architecture.
Every accuracy is a percentage (0-100).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn
from torch.utils.data import Subset

from simclr import component_label
from simclr.atomic import write_json
from simclr.checkpoint import load_checkpoint, refuse_a_folder_of_runs
from simclr.config import experiment_from_dict, validation_issues, with_install_hints
from simclr.data import ImageDataset, TensorSplit, check_split_images
from simclr.distributed import gather_shards, world_size
from simclr.errors import ConfigError, PluginError, UserError
from simclr.features import FEATURES_DIR, FeatureSet, cached_features, extract_features
from simclr.fingerprint import tensors_fingerprint
from simclr.model import build_model
from simclr.probes import few_label_probe, knn_probe, linear_probe
from simclr.rundir import CHECKPOINTS, EVAL_FILE, LAST_CHECKPOINT, last_checkpoint, training_process
from simclr.runtime import default_channels_last, exact_float32
from simclr.schema import EvalConfig, Experiment

log = logging.getLogger("simclr")


def resolve_target(target: Path) -> tuple[Path, Path]:
    """(checkpoint file, directory that receives the results and features/) for a run directory or a checkpoint
    file; a file inside ``<run>/checkpoints/`` reports into ``<run>``, any other file into its own folder."""
    target = Path(target)
    if target.is_dir():
        refuse_a_folder_of_runs(target)
        return target / CHECKPOINTS / LAST_CHECKPOINT, target
    if target.parent.name == CHECKPOINTS:
        return target, target.parent.parent
    return target, target.parent


def eval_path(
    target: Path, dataset: str | None = None, image_size: int | None = None, representation: str | None = None
) -> Path:
    """Where the evaluation of ``target`` (run directory or checkpoint file) is written: ``eval.json`` for a run's
    last checkpoint evaluated as its config says (its own dataset at its training image size, and its
    ``eval.representation``), the file :mod:`simclr.report` and :mod:`simclr.sweep` read; ``eval-<checkpoint>.json``
    for any other checkpoint file, ``...-<dataset>`` when evaluated on another ``dataset`` than the one trained on,
    ``...-<image_size>px`` for its own dataset at another image size and ``...-<representation>`` for another
    ``representation`` than the config's, so none of these replaces the run's own result."""
    checkpoint, out_dir = resolve_target(target)
    parts = [] if checkpoint.name == LAST_CHECKPOINT and checkpoint.parent.name == CHECKPOINTS else [checkpoint.stem]
    parts += [dataset] if dataset is not None else []
    parts += [f"{image_size}px"] if image_size is not None else []
    parts += [representation] if representation is not None else []
    return out_dir / ("-".join([Path(EVAL_FILE).stem, *parts]) + ".json")


def resolve_eval_device(name: str, option: str = "--device") -> torch.device:
    """``auto``: CUDA when available, else the CPU; anything else must exist here. ``option`` is how the caller
    gave it, for the messages (``--device``, or a function's ``device=``)."""
    given = f"{option} {name}" if option.startswith("--") else f"{option}{name!r}"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"{given}: not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{given}: CUDA is not available here; use cpu or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"{given}: only {torch.cuda.device_count()} GPU(s) are visible")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"{given}: MPS is not available here; use cpu or auto")
    return device


#: the component kinds an evaluation does not build: their plugins need not be installed where it runs
NOT_EVALUATED = ("loss", "optimizer", "callback")
#: the config keys `simclr eval --set` may change: the model and its training are the checkpoint's
EVAL_OVERRIDABLE = ("data", "eval", "train.seed")


def stored_experiment(
    state: dict[str, Any], checkpoint: Path, dataset: str | None = None, overrides: Sequence[str] = ()
) -> Experiment:
    """The experiment a checkpoint was trained with, as an evaluation sees it: with ``dataset`` (another dataset's
    params reset to its defaults; the run's own keeps the stored ones) and ``overrides`` of data.*, eval.* and
    train.seed, and without building the loss, optimizer and callbacks, whose plugins need not be installed where
    it runs."""
    for text in overrides:
        key = text.split("=", 1)[0].strip()
        if not any(key == allowed or key.startswith(f"{allowed}.") for allowed in EVAL_OVERRIDABLE):
            raise UserError(
                f"--set {text}: an evaluation changes only data.*, eval.* and train.seed (which seeds the baseline "
                "and the few-label draws); the model and how it was trained are the checkpoint's"
            )
    config = state.get("config")
    weights = state.get("model")
    if not isinstance(config, dict) or not isinstance(weights, dict) or not all(map(torch.is_tensor, weights.values())):
        raise UserError(f"{checkpoint}: the checkpoint holds no model weights and config; was it written by simclr?")
    if dataset:
        from simclr.plugin_manager import plugin_system

        registry = plugin_system().registry
        if dataset not in registry.names("dataset"):
            raise UserError(f"--dataset {dataset}: {registry.unknown('dataset', dataset)}")
        if dataset != config.get("data", {}).get("dataset", {}).get("name"):  # the run's own keeps its params
            config = {**config, "data": {**config["data"], "dataset": {"name": dataset}}}
    try:
        return experiment_from_dict(
            config, list(overrides), src=f"{checkpoint} (stored config)", stored=True, skip_kinds=NOT_EVALUATED
        )
    except ConfigError as exc:  # a plugin the run used that is not installed here: say which distribution it was
        raise with_install_hints(exc, state.get("plugins", {})) from None


def _output_file(
    target: Path, stored_config: dict[str, Any], used: Experiment, image_sizes: tuple[int, int], representation: str
) -> Path:
    """:func:`eval_path` for an evaluation of ``used`` (the stored config with the evaluation's changes) on images
    of ``image_sizes`` = (trained on, evaluated on): another dataset is another name (the same dataset at another
    path is still the run's own, as when a run trained on a GPU machine is evaluated on a laptop), and so are the
    run's own dataset at another image size (another dataset's size is its own) and another representation than
    the config's ``eval`` one; another dataset at a size other than its default is named with that size too."""
    stored_dataset = stored_config.get("data", {}).get("dataset", {}).get("name")
    default_representation = EvalConfig.model_fields["representation"].default
    stored_representation = stored_config.get("eval", {}).get("representation", default_representation)
    trained_size, evaluated_size = image_sizes
    own_dataset = used.data.dataset.name == stored_dataset
    if own_dataset:
        other_size = evaluated_size != trained_size
    else:  # at its own default size (given or not) the plain name; another size given for it is in the name
        other_size = "image_size" in used.data.dataset.raw_params() and evaluated_size != _default_image_size(used)
    return eval_path(
        target,
        None if own_dataset else used.data.dataset.name,
        evaluated_size if other_size else None,
        None if representation == stored_representation else representation,
    )


def _default_image_size(experiment: Experiment) -> int | None:
    """The image size of the experiment's dataset when its params give none (None where that is not a number)."""
    field = type(experiment.data.dataset.params).model_fields.get("image_size")
    return field.default if field is not None and isinstance(field.default, int) else None


def trained_normalisation(
    state: dict[str, Any], dataset: Callable[[], ImageDataset]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The input normalisation the network was trained with, stored in its checkpoint: part of the model, like
    torchvision's ImageNet mean and std, so the features do not depend on the pre-training images found where the
    evaluation runs (or on another dataset's statistics); a checkpoint from before it was stored: that of the
    ``dataset()`` it was trained on (built only then)."""
    stored = state.get("normalisation")
    if isinstance(stored, dict) and {"mean", "std"} <= stored.keys():
        return tuple(map(float, stored["mean"])), tuple(map(float, stored["std"]))
    data = dataset()
    return tuple(data.mean), tuple(data.std)


def _eval_config(eval_cfg: EvalConfig, **changes: Any) -> EvalConfig:
    """``eval_cfg`` with the command-line values that were given (None: keep the config's)."""
    data = eval_cfg.model_dump()
    linear = data["linear"]
    for key, value in changes.items():
        if value is None:
            continue
        if key in ("C", "max_iter", "backend"):
            linear[key] = value
        else:
            data[key] = value
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{issue.path}: {issue.message}" for issue in validation_issues(exc, ("eval",)))
        raise UserError(f"invalid evaluation setting: {problems}") from None


def build_encoder(
    experiment: Experiment,
    image_size: int,
    weights: dict[str, torch.Tensor] | None,
    source: Path | None = None,
    representation: str = "backbone",
) -> nn.Module:
    """The pre-trained network (``weights`` from checkpoint ``source``) or a random one seeded with train.seed
    (RNG state kept), up to the ``representation`` the probes see: the backbone, or backbone and head."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(experiment.train.seed)  # the CPU's only: CUDA RNGs are left alone
        model = build_model(experiment, image_size)
    if weights is not None:
        try:
            model.load_state_dict(weights)
        except RuntimeError as exc:
            raise UserError(
                f"{source}: the checkpoint's weights do not fit the model its config describes "
                f"({experiment.model.backbone.name}): {str(exc).splitlines()[0]}"
            ) from None
    return model if representation == "projection" else model.backbone


def labelled_splits(dataset: ImageDataset, name: str, ks: Sequence[int] = ()) -> tuple[Any, Any]:
    """The dataset's labelled (train, test) splits, checked: there, not empty, images of the dataset's shape, and
    where their labels are in memory (:class:`TensorSplit`), labels that can be probed with few-label sizes ``ks``
    (:func:`check_labels`); other splits' labels are known only once their features are extracted."""
    splits = dataset.eval_splits()
    if splits is None:
        raise UserError(
            f"dataset '{name}' has no labelled train/test splits, so it cannot be evaluated; "
            "choose a labelled one with --dataset NAME (see `simclr plugins list --kind dataset`), or, if this "
            "one has params for labelled data (`simclr plugins list --kind dataset --json` lists them), set them "
            "with --set data.dataset.PARAM=VALUE"
        )
    if len(splits[0]) == 0 or len(splits[1]) == 0:
        raise UserError(f"dataset '{name}' has an empty evaluation split")
    for split, which in zip(splits, ("labelled train", "labelled test"), strict=True):
        check_split_images(dataset, split, which, name)
    train, test = splits
    if isinstance(train, TensorSplit) and isinstance(test, TensorSplit):
        check_labels(dataset, name, train.labels, test.labels, ks)
    return splits


def check_labels(
    dataset: ImageDataset, name: str, train: torch.Tensor, test: torch.Tensor, ks: Sequence[int] = ()
) -> None:
    """Raise when the labelled splits' labels cannot be probed: a label outside ``range(len(class_names))``
    (or unknown, -1) is the dataset's mistake; fewer than two classes to train on, or a few-label K above the
    smallest class, the user's."""
    known = len(getattr(dataset, "class_names", []))  # a plugin's dataset may not set them
    for labels, which in ((train, "labelled train"), (test, "labelled test")):
        outside = (labels < 0) | (labels >= known) if known else labels < 0
        if bool(outside.any()):
            expected = f"0..{known - 1}, one per class name" if known else ">= 0 (and it sets no class_names)"
            raise PluginError(
                f"{component_label('dataset', name)} ({type(dataset).__name__}): {int(outside.sum())} images of its "
                f"{which} split have labels outside {expected}, e.g. {int(labels[outside][0])}; every labelled "
                "image needs its class's index in class_names"
            )
    classes = torch.unique(train)
    if len(classes) < 2:
        only = int(classes[0])
        named = f"'{dataset.class_names[only]}' (label {only})" if known else f"label {only}"
        raise UserError(
            f"dataset '{name}': its labelled train split has a single class, {named}; a linear probe needs "
            "images of at least two classes"
        )
    counts = torch.bincount(train)
    fewest = int(counts[counts > 0].min())
    too_many = [k for k in ks if k > fewest]
    if too_many:
        raise UserError(
            f"labels per class {too_many} (--labels-per-class or eval.labels_per_class): the smallest class has "
            f"only {fewest} labelled training images; choose K <= {fewest}"
        )


def _probe_all(features: FeatureSet, cfg: EvalConfig, seed: int, device: torch.device) -> dict[str, Any]:
    """Every probe on one model's features; the torch probe and kNN run on ``device``, scikit-learn on the CPU."""
    linear = cfg.linear
    on_device = features.to(device)
    probe_set = on_device if linear.backend == "torch" else features
    sets = (probe_set.train_x, probe_set.train_y, probe_set.test_x, probe_set.test_y)
    return {
        "linear": linear_probe(*sets, C=linear.C, max_iter=linear.max_iter, backend=linear.backend),
        "few_label": few_label_probe(
            *sets,
            ks=cfg.labels_per_class,
            draws=cfg.few_label_draws,
            seed=seed,
            C=linear.C,
            max_iter=linear.max_iter,
            backend=linear.backend,
        ),
        "knn": knn_probe(
            on_device.train_x,
            on_device.train_y,
            on_device.test_x,
            on_device.test_y,
            k=cfg.knn_k,
            temperature=cfg.knn_temperature,
        ),
    }


@exact_float32()
def evaluate_run(
    target: Path,
    *,
    dataset: str | None = None,
    overrides: Sequence[str] = (),
    device: str = "auto",
    ks: Sequence[int] | None = None,
    knn_k: int | None = None,
    baseline: bool | None = None,
    C: float | None = None,
    max_iter: int | None = None,
    backend: str | None = None,
    representation: str | None = None,
    progress: bool = True,
    cache: bool = True,
    built: tuple[dict[str, Any], ImageDataset] | None = None,
) -> dict[str, Any]:
    """Evaluate a run directory or checkpoint file and write the result to :func:`eval_path`'s file.

    ``built``: a dataset already built (the trainer's, right after training) with its config section as
    ``model_dump(mode="json")``; used where the evaluation would build the same, so its labelled images are not
    read a second time.

    ``dataset`` replaces the stored dataset (its params reset to that dataset's defaults) and ``overrides``
    (``key.path=value``) apply to the stored config; the other keyword arguments, when given, override the
    config's ``eval`` section. Returns ``{"dataset", "checkpoint", "epoch", "representation", "feature_dim",
    "linear": {"top1", "top5"}, "few_label": {"K": {"top1", "std"}}, "knn": {"k", "top1"}, "baseline": {...},
    "seconds", ...}`` with accuracies in percent; ``"baseline"`` is absent when the baseline is off; ``"file"`` is
    the name of the file in the run directory (or beside the checkpoint) it was written to.
    """
    started = time.perf_counter()
    checkpoint, out_dir = resolve_target(target)
    torch_device = resolve_eval_device(device)
    state = load_checkpoint(checkpoint, map_location="cpu")
    holder = training_process(out_dir) if checkpoint == last_checkpoint(out_dir) else None
    if holder is not None:
        log.warning(
            "%s is being trained by %s right now: this evaluates its last checkpoint, of epoch %s (its result says "
            "so; `simclr report` marks it once training has gone further)",
            out_dir,
            holder,
            state.get("epoch"),
        )
    if not os.access(out_dir, os.W_OK):
        raise UserError(f"cannot write results into {out_dir}; copy the checkpoint into a writable folder")
    experiment = stored_experiment(state, checkpoint, dataset, overrides)
    cfg = _eval_config(
        experiment.eval,
        labels_per_class=list(ks) if ks is not None else None,
        knn_k=knn_k,
        baseline=baseline,
        C=C,
        max_iter=max_iter,
        backend=backend,
        representation=representation,
    )
    reusable = built is not None and built[0] == experiment.data.dataset.model_dump(mode="json")
    data = built[1] if reusable else experiment.data.dataset.build()
    name = experiment.data.dataset.name
    train_split, test_split = labelled_splits(data, name, cfg.labels_per_class)
    image_size = state.get("image_size", data.image_size)
    if data.image_size != image_size and "image_size" not in experiment.data.dataset.raw_params():
        sized = "image_size" in type(experiment.data.dataset.params).model_fields
        log.warning(
            "dataset '%s' gives %d px images (its %s) to a network trained on %d px ones%s",
            name,
            data.image_size,
            "default" if sized else "only size",
            image_size,
            f"; to evaluate at the training size: --set data.dataset.image_size={image_size}" if sized else "",
        )
    mean, std = trained_normalisation(state, lambda: data)
    labelled_data = data.eval_fingerprint() if cache else None  # the hashes key the cache only
    common = {  # the labelled images themselves where the dataset can hash them, else its settings
        "dataset": labelled_data or experiment.data.dataset.model_dump(mode="json"),
        "normalisation": [mean, std],
        "image_size": image_size,
        "representation": cfg.representation,
    }
    cache_dir = out_dir / FEATURES_DIR if cache else None

    def features_of(backbone: nn.Module, label: str) -> FeatureSet:
        backbone = backbone.to(torch_device)
        if torch_device.type == "cpu" and default_channels_last(torch_device):  # 1.5x faster on an x86-64 CPU
            backbone = backbone.to(memory_format=torch.channels_last)

        def extract(split: Any, name: str) -> tuple[torch.Tensor, torch.Tensor]:
            return extract_features(
                backbone,
                split,
                mean,
                std,
                torch_device,
                cfg.batch_size,
                progress,
                description=f"{label} features: {name}",
                num_workers=experiment.data.num_workers,
            )

        return FeatureSet(*extract(train_split, "train"), *extract(test_split, "test"))

    pretrained_key = {
        **common,
        "model": "pretrained",
        "weights": tensors_fingerprint(state["model"]) if cache else None,
    }
    pretrained = cached_features(
        cache_dir,
        pretrained_key,
        lambda: features_of(
            build_encoder(experiment, image_size, state["model"], checkpoint, cfg.representation), "pre-trained"
        ),
    )
    check_labels(data, name, pretrained.train_y, pretrained.test_y, cfg.labels_per_class)  # of any kind of split
    if cfg.knn_k > len(pretrained.train_y):
        log.warning(
            "eval.knn_k %d is more than the %d labelled training images: kNN uses k=%d",
            cfg.knn_k,
            len(pretrained.train_y),
            len(pretrained.train_y),
        )
    seed = experiment.train.seed
    result: dict[str, Any] = {
        "dataset": experiment.data.dataset.name,
        "dataset_params": experiment.data.dataset.params.model_dump(mode="json"),
        "checkpoint": str(checkpoint),
        "epoch": state.get("epoch"),
        "trained_on": state.get("device"),
        "image_size": data.image_size,
        "representation": cfg.representation,
        "feature_dim": int(pretrained.train_x.shape[1]),
        "num_train": len(pretrained.train_y),
        "num_test": len(pretrained.test_y),
        "settings": {
            "C": cfg.linear.C,
            "max_iter": cfg.linear.max_iter,
            "probe": cfg.linear.backend,
            "few_label_draws": cfg.few_label_draws,
            "knn_temperature": cfg.knn_temperature,
        },
        **_probe_all(pretrained, cfg, seed, torch_device),
    }
    if cfg.baseline:
        architecture = experiment.model.model_dump(mode="json")
        baseline_key = {**common, "model": "baseline", "seed": seed, "architecture": architecture}
        random_init = cached_features(
            cache_dir,
            baseline_key,
            lambda: features_of(
                build_encoder(experiment, image_size, None, representation=cfg.representation), "random-init"
            ),
        )
        result["baseline"] = _probe_all(random_init, cfg, seed, torch_device)
    result["seconds"] = round(time.perf_counter() - started, 3)
    out_file = _output_file(target, state["config"], experiment, (image_size, data.image_size), cfg.representation)
    result["file"] = out_file.name
    write_json(result, out_file)
    return result


def knn_monitor(
    model: nn.Module,
    dataset: ImageDataset,
    device: torch.device | str,
    k: int = 200,
    temperature: float = 0.1,
    batch_size: int = 256,
    normalisation: tuple[Sequence[float], Sequence[float]] | None = None,
) -> float:
    """kNN top-1 (percent) of ``model.backbone``'s features of the labelled splits, for the online monitor during
    training: features stay on ``device``, no progress bar, and the model's train/eval mode is restored.
    ``normalisation``: the (mean, std) training uses (default: the dataset's).

    Under torchrun it is a collective: each rank extracts a round-robin shard of each split and the shards are
    gathered, so the extraction takes 1/W of the time and no rank idles at the next collective while another
    extracts a large labelled set (which could outlast the process group's timeout)."""
    splits = dataset.eval_splits()
    if splits is None:
        raise UserError("the kNN monitor needs a dataset with labelled splits; set train.knn_monitor_every: 0")
    mean, std = normalisation or (dataset.mean, dataset.std)
    ranks = world_size()
    rank = torch.distributed.get_rank() if ranks > 1 else 0
    extracted = []
    for split in splits:
        sharded = ranks > 1 and len(split) >= ranks
        shard = Subset(split, range(rank, len(split), ranks)) if sharded else split
        features, labels = extract_features(
            model.backbone, shard, mean, std, device, batch_size, progress=False, keep_on_device=True
        )
        if sharded:
            features, labels = gather_shards(features, len(split)), gather_shards(labels, len(split))
        extracted.append((features, labels))
    (train_x, train_y), (test_x, test_y) = extracted
    return knn_probe(train_x, train_y, test_x, test_y, k=k, temperature=temperature)["top1"]
