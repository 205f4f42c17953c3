"""The training engine: builds every component through the registry and runs the SimCLR loop.

It owns device, precision, checkpointing, progress, signals and distributed plumbing, and never names a
concrete loss, backbone, optimizer or dataset.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from simclr import component_label
from simclr import config as config_module
from simclr.atomic import write_json
from simclr.checkpoint import load_checkpoint, remove_partial_writes, save_checkpoint
from simclr.contracts import (
    check_backbone_output,
    check_loss_output,
    warn_of_loss_parameters,
    warn_of_untrained_parameters,
)
from simclr.data import check_split_images
from simclr.distributed import gather_objects, gather_with_grad, global_batchnorm, together
from simclr.errors import PluginError, SimCLRError, TrainingError, UserError
from simclr.evaluate import knn_monitor, labelled_splits, trained_normalisation
from simclr.hookspecs import RunContext
from simclr.metrics import EpochMeter, MetricTracker
from simclr.model import build_model
from simclr.plugin_manager import plugin_system
from simclr.progress import TrainProgress
from simclr.rundir import (
    CONFIG_FILE,
    TRAINING_FILE,
    check_new_run_dir,
    create_run_dir,
    last_checkpoint,
    lock_run_dir,
    training_process,
)
from simclr.runtime import make_runtime, seed_everything, shutdown
from simclr.schedule import LRSchedule, batch_scale
from simclr.schema import Experiment

log = logging.getLogger("simclr")


class Interrupted(SimCLRError):
    """SIGINT/SIGTERM arrived; a checkpoint was saved."""

    exit_code = 130


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load a checkpoint's optimizer state (moments, step counts) into the optimizer built from the config now,
    keeping that optimizer's group options. ``load_state_dict`` alone would put back the saved ones, so a resume
    with ``--set optimizer.weight_decay=...`` would silently keep the old value, and a run resumed on another
    device would keep the old device's kernel choice (fused or not), which need not exist here and which GradScaler
    would feed the wrong arguments (it asks the optimizer built now whether it takes the grad scale). An optimizer
    whose state format changed between versions may define ``upgrade_state_dict(saved) -> saved``, called first,
    while the saved options (its lr last used, a format marker) are still there."""
    upgrade = getattr(optimizer, "upgrade_state_dict", None)
    if callable(upgrade):
        saved = upgrade(saved)
    built = [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]
    # another number of groups: load_state_dict says so below
    groups = [{**group, **options} for group, options in zip(saved["param_groups"], built, strict=False)]
    try:
        optimizer.load_state_dict({**saved, "param_groups": groups})
    except ValueError as exc:  # another number or size of parameter groups
        raise UserError(
            f"the checkpoint's optimizer state does not fit the optimizer of the config ({exc}); a resumed run "
            "keeps how its optimizer groups the parameters: --set may not change the optimizer params that decide "
            "the groups"
        ) from None
    match_parameter_layout(optimizer)


def match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each per-parameter state tensor (momentum, Adam's moments) its parameter's memory layout.
    ``load_state_dict`` moves state to the parameter's device and dtype but keeps the saved strides, so a run
    resumed with another ``train.channels_last`` (a CPU-started run resumed on a GPU, where it is the default)
    would feed fused optimizers mismatched layouts, which their CUDA kernels refuse."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param).copy_(value)


@contextmanager
def stop_on_signals():
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step (a second SIGINT stops at once)."""
    state = {"signal": None}

    def handler(signum, frame):
        if state["signal"] is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        state["signal"] = state["signal"] or signal.Signals(signum).name  # the first one is what stopped the run

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield state
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class Trainer:
    def __init__(
        self,
        experiment: Experiment,
        run_dir: Path,
        resume: bool = False,
        overwrite: bool = False,
        strict_plugins: bool = False,
        device: str | None = None,
        show_progress: bool = True,
    ):
        """Build everything and check the run directory; nothing is written until :meth:`fit`. Under torchrun this
        joins the process group, and leaves it again when something here fails."""
        self.experiment = experiment
        self.run_dir = run_dir
        self.resume = resume
        self.overwrite = overwrite
        self.strict_plugins = strict_plugins
        self.show_progress = show_progress
        self.runtime = make_runtime(experiment.train, device)
        #: the run directory's lock while this process trains it (rank 0's, from :meth:`_start`)
        self.lock: IO[str] | None = None
        try:
            self._build()
        except BaseException:
            shutdown(self.runtime)
            raise

    def _build(self) -> None:
        """Everything :meth:`__init__` promises, once the runtime is there."""
        from simclr.datastream import ViewStream

        # rank 0's: under plain torchrun without --out each rank names its own timestamped default
        self.run_dir = Path(gather_objects(str(self.run_dir))[0])
        experiment, run_dir, train = self.experiment, self.run_dir, self.experiment.train
        resume, overwrite = self.resume, self.overwrite
        state = load_checkpoint(run_dir, "cpu") if resume else None
        if not resume:
            check_new_run_dir(run_dir, overwrite)
            # rank 0's view of the lock, shared: every rank refuses together
            holder = training_process(run_dir) if overwrite and self.runtime.is_main and run_dir.is_dir() else None
            holder = gather_objects(holder)[0]
            if holder is not None:  # refused now; _start takes the lock before it deletes anything
                raise UserError(f"{run_dir} is being trained by {holder} right now; --overwrite would delete it")
        seed_everything(train.seed)
        self.dataset = experiment.data.dataset.build()
        check_split_images(self.dataset, self.dataset.pretrain_split(), "pre-training", experiment.data.dataset.name)
        if experiment.eval.after_train:
            self._check_evaluable()
        model = self.runtime.place(build_model(experiment, self.dataset.image_size))
        # checked before BatchNorm goes global: a trial step in training mode must not communicate across ranks
        check_backbone_output(model.backbone, experiment.model.backbone.name, self.dataset.image_size, self.runtime)
        if self.runtime.distributed and experiment.model.sync_batchnorm:
            model = self.runtime.place(global_batchnorm(model, self.runtime.device))
        self.model = model
        self.loss_fn = experiment.loss.build().to(self.runtime.device)
        self._try_loss()
        self.optimizer = experiment.optimizer.build(model)
        if self.runtime.is_main:
            warn_of_untrained_parameters(model, self.optimizer, experiment.optimizer.name)
            warn_of_loss_parameters(self.loss_fn, experiment.loss.name)
        #: the input normalisation: a resumed run keeps its checkpoint's, whatever the pre-training folder holds now
        self.normalisation = self._normalisation(state)
        self.stream = ViewStream(self.dataset, experiment.data, self.runtime, train.seed, self.normalisation)
        self.steps_per_epoch = self.stream.steps_per_epoch
        if train.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, train.max_steps_per_epoch)
        total = train.epochs * self.steps_per_epoch
        warmup = round(experiment.schedule.warmup_epochs * self.steps_per_epoch)
        scale = batch_scale(experiment.schedule.lr_scaling, experiment.data.batch_size)
        self.schedule = LRSchedule(self.optimizer, total, warmup, experiment.schedule.decay, scale)
        self.scaler = self.runtime.grad_scaler()
        self.callbacks: list[Any] = together(self._build_callbacks)
        self.forward = self._wrap(model)
        self.monitor_every = train.knn_monitor_every
        if self.monitor_every is None:
            self.monitor_every = 5 if self.runtime.device.type == "cuda" and self.dataset.eval_splits() else 0
        elif self.monitor_every and self.dataset.eval_splits() is None:
            raise UserError(
                f"train.knn_monitor_every is {self.monitor_every} but dataset '{experiment.data.dataset.name}' has "
                "no labelled splits for the kNN monitor; set train.knn_monitor_every: 0"
            )
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.last_finite_loss: float | None = None
        #: the metric totals, steps and seconds of an epoch interrupted part-way, carried into its resumed part
        self.epoch_progress: dict[str, Any] | None = None
        #: seconds and images of the completed epochs, over every resume (None: a checkpoint older than the count)
        self.trained: dict[str, float] | None = {"seconds": 0.0, "images": 0}
        self.stopping = False
        if state is not None:
            self._restore(state)
            if self.epoch > train.epochs or (self.epoch == train.epochs and self.step_in_epoch > 0):
                started = f" and {self.step_in_epoch} steps of epoch {self.epoch + 1}" if self.step_in_epoch else ""
                at_least = self.epoch + 1 if self.step_in_epoch else self.epoch
                raise UserError(
                    f"{run_dir} has trained {self.epoch} epochs{started}, more than train.epochs={train.epochs}; "
                    f"a resume can only train longer: pass --set train.epochs=N with N >= {at_least}"
                )

    def _normalisation(self, state: dict[str, Any] | None) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The dataset's mean and std for a new run; for a resume, the checkpoint's (the statistics of an image
        folder change with its files, and the network was trained on inputs normalised the old way), with a
        warning when the pre-training set's size changed since."""
        if state is None:
            return tuple(self.dataset.mean), tuple(self.dataset.std)
        images, saved = len(self.dataset.pretrain_split()), state.get("pretrain_images")
        if saved is not None and saved != images and self.runtime.is_main:
            log.warning(
                "the pre-training set has %d images now and had %d when %s was written: the run goes on with the "
                "images there now, normalised as before; the steps per epoch, and so the learning-rate schedule, "
                "follow the new count, and a resume in the middle of an epoch may repeat or skip some of its images",
                images,
                saved,
                last_checkpoint(self.run_dir),
            )
        return trained_normalisation(state, lambda: self.dataset)

    def _check_evaluable(self) -> None:
        """eval.after_train: the labelled splits are checked now, before anything is written, rather than found
        unusable after training (their labels too where they are in memory)."""
        name = self.experiment.data.dataset.name
        if self.dataset.eval_splits() is None:
            raise UserError(
                f"eval.after_train is true but dataset '{name}' has no labelled train/test splits to evaluate on; "
                "set eval.after_train: false (and evaluate later with `simclr eval RUN_DIR --dataset NAME`), or "
                "give the dataset labelled splits"
            )
        labelled_splits(self.dataset, name, self.experiment.eval.labels_per_class)

    def _try_loss(self) -> None:
        """Call the loss once on random projections of the global batch's shape, before anything is written: a
        plugin's broken contract, or params that do not fit the batch (more sampled negatives than it has), is
        an error now rather than after the run directory exists. The RNG is left as it was."""
        experiment = self.experiment
        projection = experiment.model.projection
        width = projection.out_dim if projection.layers else self.model.feature_dim
        device = self.runtime.device
        name = experiment.loss.name
        trial = f"random projections [{experiment.data.batch_size}, {width}] of each view"
        with self.runtime.rng_kept():
            z1, z2 = torch.randn(2, experiment.data.batch_size, width, device=device, requires_grad=True)
            try:
                loss = self.loss_fn(z1, z2)
            except SimCLRError:
                raise
            except Exception as exc:
                problem = f"failed on {trial}: {type(exc).__name__}: {exc}"
            else:
                check_loss_output(loss, self.loss_fn, name)
                finite = bool(torch.isfinite(loss.detach()))
                problem = None if finite else f"is {loss.item()} on {trial}; a loss must be finite on any projections"
        if problem:
            raise PluginError(f"{component_label('loss', name)} {problem}")

    def _wrap(self, model: nn.Module) -> nn.Module:
        if self.runtime.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids)
        if self.experiment.train.compile:
            model = torch.compile(model)
        return model

    # ---- checkpoints -------------------------------------------------------------------------------------
    def _state(self, streams: list[dict]) -> dict[str, Any]:
        """Everything a resume needs; ``streams`` holds every rank's view-stream state, in rank order."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "streams": streams}
        mean, std = self.normalisation
        if self.runtime.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.runtime.device)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "config": config_module.resolved_dict(self.experiment),
            "plugins": config_module.component_providers(self.experiment),
            "device": str(self.runtime.device),
            "feature_dim": self.model.feature_dim,
            "image_size": self.dataset.image_size,
            # plain floats: a plugin's numpy or tensor values would make the file unreadable with weights_only
            "normalisation": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
            "pretrain_images": self.stream.size,
            "last_finite_loss": self.last_finite_loss,
            "epoch_progress": self.epoch_progress,
            "trained": self.trained,
            "torch_version": str(torch.__version__),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        mismatch = state_dict_mismatch(self.model.state_dict(), state["model"])
        trained_size = state.get("image_size", self.dataset.image_size)
        if not mismatch and trained_size != self.dataset.image_size:
            mismatch = f"trained on {trained_size} px images, now given {self.dataset.image_size} px"
        if mismatch:
            raise UserError(
                f"{last_checkpoint(self.run_dir)}: the checkpoint's weights do not fit the model of "
                f"{self.run_dir / CONFIG_FILE} ({mismatch}). A resumed run keeps its architecture: "
                "--set may not change model.* or the dataset's image size"
            )
        self.model.load_state_dict(state["model"])
        stored = state.get("config", {})
        trained_batch = stored.get("data", {}).get("batch_size", self.experiment.data.batch_size)
        if trained_batch != self.experiment.data.batch_size:
            raise UserError(
                f"{last_checkpoint(self.run_dir)}: the run trained with data.batch_size {trained_batch}; a resumed run "
                "keeps it (the learning-rate schedule and the data order count its steps): --set may not change "
                "data.batch_size (start a new run for another batch size)"
            )
        trained_with = stored.get("optimizer", {}).get("name", self.experiment.optimizer.name)
        if trained_with != self.experiment.optimizer.name:
            raise UserError(
                f"{last_checkpoint(self.run_dir)}: the run trained with optimizer '{trained_with}' and its state is "
                f"that optimizer's; a resumed run keeps its optimizer: --set may not change optimizer.name to "
                f"'{self.experiment.optimizer.name}' (start a new run for another optimizer)"
            )
        load_optimizer_state(self.optimizer, state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.runtime.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.runtime.device)
        streams = state["rng"]["streams"]
        if self.runtime.rank < len(streams):
            self.stream.load_state_dict(streams[self.runtime.rank])
        else:
            log.warning(
                "rank %d: the checkpoint holds view streams for %d process(es); this rank's starts afresh",
                self.runtime.rank,
                len(streams),
            )
        self.epoch = state["epoch"]
        self.step_in_epoch = state["step_in_epoch"]
        self.global_step = state["global_step"]
        self.last_finite_loss = state.get("last_finite_loss")
        self.epoch_progress = state.get("epoch_progress") if self.step_in_epoch else None
        self.trained = state.get("trained")

    def save(self) -> Path | None:
        """Write the checkpoint on rank 0 (every rank must call it: it gathers the ranks' view-stream states)."""
        streams = gather_objects(self.stream.state_dict())
        if not self.runtime.is_main:
            return None
        state = self._state(streams)
        path = save_checkpoint(state, last_checkpoint(self.run_dir))
        every = self.experiment.train.checkpoint_every
        if every and self.step_in_epoch == 0 and self.epoch % every == 0:
            save_checkpoint(state, path.with_name(f"epoch-{self.epoch:04d}.pt"))
        write_json(self.training_record(), self.run_dir / TRAINING_FILE)
        self._hook("simclr_on_checkpoint_saved", path=path)
        return path

    def training_record(self) -> dict[str, Any]:
        """How far the run has trained and what it took, as of its last checkpoint (training.json): what
        `simclr report` shows, whatever callbacks the run had."""
        partial = self.epoch_progress or {}
        seconds = images = None
        if self.trained is not None:
            seconds = self.trained["seconds"] + partial.get("seconds", 0.0)
            images = self.trained["images"] + partial.get("steps", 0) * self.experiment.data.batch_size
        return {
            "epochs": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "train_seconds": seconds,
            "images": images,
        }

    # ---- the loop ----------------------------------------------------------------------------------------
    def _hook(self, name: str, **kwargs: Any) -> None:
        if self.runtime.is_main:
            plugin_system().call_lifecycle(name, strict=self.strict_plugins, run=self.context, **kwargs)

    def _start(self) -> None:
        if self.runtime.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.lock = lock_run_dir(self.run_dir)  # before the first write into, or deletion of, a run
            if not self.resume:
                create_run_dir(self.run_dir, self.overwrite)  # an overwritten run's lock file stays, held
            remove_partial_writes(last_checkpoint(self.run_dir).parent)
            # rewritten on resume too: --set overrides given then must survive a later resume
            (self.run_dir / CONFIG_FILE).write_text(config_module.dump_yaml(self.experiment))
        self.context = RunContext(
            self.run_dir, self.experiment, self.model, self.optimizer, self.runtime, self.epoch, self.global_step
        )
        if not self.callbacks:  # none configured, or not rank 0
            return
        system = plugin_system()
        for i, (section, callback) in enumerate(zip(self.experiment.train.callbacks, self.callbacks, strict=True)):
            label = f"{component_label('callback', section.name)} (from train.callbacks)"
            system.register_object(callback, name=f"callback:{i}:{section.name}", label=label)

    def _build_callbacks(self) -> list[Any]:
        """The configured callbacks, on rank 0 (the only one that calls them), their hooks checked now rather than
        when the run starts."""
        if not self.runtime.is_main:
            return []
        callbacks = []
        for section in self.experiment.train.callbacks:
            callback = section.build()
            plugin_system().check_hooks(callback, component_label("callback", section.name))
            callbacks.append(callback)
        return callbacks

    def _finish_hooks(self) -> None:
        system = plugin_system()
        for callback in self.callbacks:
            if system.manager.is_registered(callback):
                system.manager.unregister(callback)

    def fit(self) -> dict[str, Any]:
        """Train to the configured number of epochs; returns the last epoch's record."""
        epochs = self.experiment.train.epochs
        if self.epoch == epochs:  # nothing is written either: --set values given now were never trained with
            log.warning(
                "%s has already trained all %d epochs; nothing to do (pass --set train.epochs=N to train longer)",
                self.run_dir,
                epochs,
            )
            self._leave(together=True)
            return {}
        try:
            together(self._start)
        except BaseException:
            self._leave(together=False)
            raise
        progress = TrainProgress(epochs, self.steps_per_epoch, enabled=self.runtime.is_main and self.show_progress)
        status, last = "failed", {}
        try:
            self._hook("simclr_on_train_start")
            with stop_on_signals() as signals:
                while self.epoch < epochs:
                    last = self._run_epoch(progress, signals)
                    if self.stopping and self.epoch < epochs:
                        raise self._interrupted(signals)
            status = "completed"
            return last
        except Interrupted:
            status = "interrupted"
            raise
        finally:
            progress.close()
            failing = sys.exc_info()[1] is not None
            try:
                self._hook("simclr_on_train_end", record={**last, "status": status})
            except SimCLRError as exc:
                if not failing:
                    raise
                log.warning("%s", exc)  # do not hide the error that is already stopping the run
            finally:
                self._finish_hooks()
                self._leave(together=status != "failed")

    def _leave(self, together: bool) -> None:
        """Leave the process group (``together``: see :func:`shutdown`) and let go of the run directory."""
        try:
            shutdown(self.runtime, together=together)
        finally:
            if self.lock is not None:
                self.lock.close()
                self.lock = None

    def _run_epoch(self, progress: TrainProgress, signals: dict) -> dict[str, Any]:
        log_every = self.experiment.train.log_every
        tracker = MetricTracker(self.runtime.device)
        progress.start_epoch(self.epoch, self.step_in_epoch)
        meter = EpochMeter(self.epoch_progress, self.global_step)  # with the part trained before an interruption
        self.epoch_progress = None
        lr = 0.0
        self.model.train()
        for views in self.stream.epoch(self.epoch, self.step_in_epoch):
            if self.step_in_epoch >= self.steps_per_epoch:
                break
            lr = self.schedule.set_step(self.global_step)
            loss = self._step(*views)
            tracker.update(loss, getattr(self.loss_fn, "diagnostics", {}))
            self.global_step += 1
            self.step_in_epoch += 1
            logged = self.global_step % log_every == 0 or self.step_in_epoch == self.steps_per_epoch
            if logged:
                record = self._read_interval(tracker, meter, lr)
                progress.step(self.step_in_epoch, record)
                self.context.step = self.global_step
                self._hook("simclr_on_log", record=record)
            if self._stop_requested(signals, logged):
                self.stopping = True
                if self.step_in_epoch < self.steps_per_epoch:  # else finish the epoch, then stop
                    record = self._read_interval(tracker, meter, lr)
                    if record:
                        self._hook("simclr_on_log", record=record)
                    self.epoch_progress = meter.progress()
                    raise self._interrupted(signals, self.save())
        seconds = meter.seconds()
        record = {
            "type": "epoch",
            "epoch": self.epoch,
            "step": self.global_step,
            **meter.means(),
            "lr": lr,
            "images_per_sec": meter.steps * self.experiment.data.batch_size / max(seconds, 1e-9),
            "seconds": seconds,
        }
        self.epoch += 1
        self.step_in_epoch = 0
        if self.trained is not None:
            self.trained = {
                "seconds": self.trained["seconds"] + seconds,
                "images": self.trained["images"] + meter.steps * self.experiment.data.batch_size,
            }
        if self.monitor_every and self.epoch % self.monitor_every == 0:
            record["knn_top1"] = self._knn_monitor()
        self.context.epoch, self.context.step = self.epoch, self.global_step
        self._hook("simclr_on_epoch_end", epoch=self.epoch - 1, record=record)
        self.save()
        progress.end_epoch(record)
        return record

    def _interrupted(self, signals: dict, path: Path | None = None) -> Interrupted:
        path = path or last_checkpoint(self.run_dir)
        return Interrupted(
            f"stopped by {signals['signal']} in epoch {self.epoch + 1} of {self.experiment.train.epochs}, "
            f"at step {self.global_step}; "
            f"checkpoint saved to {path}. Continue with: simclr train --resume {self.run_dir}"
        )

    def _stop_requested(self, signals: dict, logged: bool) -> bool:
        """Whether a signal asks to stop after this step. Under torchrun the ranks must agree (saving is a
        collective), so they vote at logged steps, where the loop reads the device anyway."""
        if not self.runtime.distributed:
            return signals["signal"] is not None
        if not logged:
            return False
        vote = torch.tensor([signals["signal"] is not None], dtype=torch.int32, device=self.runtime.device)
        torch.distributed.all_reduce(vote, op=torch.distributed.ReduceOp.MAX)
        stop = bool(vote.item())
        if stop and signals["signal"] is None:
            signals["signal"] = "a signal to another rank"
        return stop

    def _knn_monitor(self) -> float:
        """kNN top-1 of the current backbone's features; under torchrun every rank takes part (each extracts a
        shard). The global RNG is left as it was: every rank must keep drawing the same samples in the loss."""
        cfg = self.experiment.eval
        with torch.random.fork_rng(devices=[]):
            return knn_monitor(
                self.model,
                self.dataset,
                self.runtime.device,
                cfg.knn_k,
                cfg.knn_temperature,
                cfg.batch_size,
                normalisation=self.normalisation,
            )

    def _step(self, view1: torch.Tensor, view2: torch.Tensor) -> torch.Tensor:
        with self.runtime.autocast():
            projections = self.forward(torch.cat([view1, view2]))
        z1, z2 = projections.chunk(2)
        loss = self.loss_fn(gather_with_grad(z1), gather_with_grad(z2))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss

    def _read_interval(self, tracker: MetricTracker, meter: EpochMeter, lr: float) -> dict[str, Any]:
        """Read back the steps since the last read and add them to the epoch's ``meter``; {} when there were
        none."""
        seconds = time.perf_counter() - meter.interval_start
        record, steps = self._read(tracker, meter.interval_first_step, seconds, lr)
        meter.add_interval(record, steps, self.global_step)
        return record if steps else {}

    def _read(self, tracker: MetricTracker, first_step: int, seconds: float, lr: float) -> tuple[dict, int]:
        interval = tracker.read()
        if interval.last_finite_loss is not None:
            self.last_finite_loss = interval.last_finite_loss
        if interval.first_bad_offset is not None:
            bad_step = first_step + interval.first_bad_offset + 1
            last = f"{self.last_finite_loss:.6g}" if self.last_finite_loss is not None else "none"
            checkpoint = last_checkpoint(self.run_dir)
            kept = (
                f"The last good checkpoint is kept in {checkpoint}."
                if checkpoint.is_file()
                else "No checkpoint was written yet (the first is written at the end of the first epoch)."
            )
            raise TrainingError(
                f"the loss became non-finite (NaN or Inf) at step {bad_step} (epoch {self.epoch + 1} of "
                f"{self.experiment.train.epochs}); last finite loss: {last}. {kept} Try a lower optimizer.lr, a "
                "longer schedule.warmup_epochs, or train.precision: fp32."
            )
        record = {
            "type": "step",
            "epoch": self.epoch,
            "step": self.global_step,
            **interval.means,
            "lr": lr,
            "images_per_sec": interval.steps * self.experiment.data.batch_size / max(seconds, 1e-9),
        }
        return record, interval.steps


def state_dict_mismatch(expected: dict[str, torch.Tensor], found: dict[str, Any]) -> str:
    """How ``found`` (a checkpoint's weights) differs from ``expected`` (the model's): a short summary naming
    the first differences, or "" when every key is there with the same shape."""
    missing = [key for key in expected if key not in found]
    unexpected = [key for key in found if key not in expected]
    reshaped = [
        f"{key} {list(found[key].shape)} vs {list(value.shape)} here"
        for key, value in expected.items()
        if key in found and isinstance(found[key], torch.Tensor) and found[key].shape != value.shape
    ]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", reshaped)):
        if keys:
            parts.append(f"{len(keys)} {label}, e.g. {', '.join(keys[:2])}")
    return "; ".join(parts)
