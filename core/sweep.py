"""Sweeps: experiments run one after another (or one per GPU) into run directories under one sweep directory.

A sweep file names a base experiment and either a ``grid`` (every combination of the listed values) or an explicit
list of ``runs`` (each with its own overrides, optionally its own experiment file). Every combination is validated
before any runs. A re-run skips the combinations that finished, resumes the ones that were interrupted and skips
the ones whose training failed (remove their directory to retry). A re-run asking for more ``train.epochs`` than
the runs were trained for resumes each one to train on, then evaluates it again.

Order of the overrides of one combination: the experiment file, the sweep's ``set``, the run's ``set`` (or its grid
values), then ``--set`` from the command line.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from simclr.atomic import write_json
from simclr.config import (
    Positions,
    apply_overrides,
    experiment_from_dict,
    load_yaml,
    resolved_dict,
    validate,
    validation_issues,
)
from simclr.errors import ConfigError, ConfigIssue, SimCLRError, TrainingError, UserError
from simclr.interrupts import sigterm_as_interrupt
from simclr.rundir import (
    CONFIG_FILE,
    EVAL_FILE,
    RUN_MARKER,
    is_run_dir,
    is_unused,
    last_checkpoint,
    read_json_object,
    run_dir_config,
)
from simclr.schema import Experiment, Strict

log = logging.getLogger("simclr")

#: written into each run directory by the sweep: the run's name, overrides, reported number and status
SWEEP_RECORD = "sweep.json"
RUN_NAME = r"^[A-Za-z0-9][A-Za-z0-9._=,+-]*$"
EPOCHS_KEY = "train.epochs"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


class SweepRun(Strict):
    name: str = Field(description="run name, also the run directory's name")
    experiment: str | None = Field(None, description="experiment file, relative to the sweep file (default: base)")
    set: list[str] = Field(default_factory=list, description="KEY.PATH=VALUE overrides of this run")
    reported: float | None = Field(None, description="published linear top-1 (%), shown beside ours in the report")

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if not re.fullmatch(RUN_NAME, name):
            raise ValueError(
                f"{name!r} cannot name a run: it names the run's folder, so it is letters, digits and . _ = , + - "
                "only, starting with a letter or digit"
            )
        return name


class SweepSpec(Strict):
    """A sweep file."""

    base: str | None = Field(None, description="experiment file, relative to the sweep file")
    set: list[str] = Field(default_factory=list, description="KEY.PATH=VALUE overrides applied to every run")
    grid: dict[str, list[Any]] | None = Field(None, description="KEY.PATH: [values]: every combination is a run")
    runs: list[SweepRun] | None = Field(None, description="an explicit list of runs")
    out: str | None = Field(None, description="sweep directory, relative to the current one (default runs/<stem>)")
    eval: bool = Field(
        True, description="evaluate each run after training, writing its eval.json (eval.after_train is not used)"
    )

    @field_validator("grid")
    @classmethod
    def _values(cls, grid: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if grid == {}:
            raise ValueError("is empty; give it KEY.PATH: [values] entries")
        for key, values in (grid or {}).items():
            if not values:
                raise ValueError(f"grid key '{key}' has no values")
        return grid

    @model_validator(mode="after")
    def _shape(self) -> SweepSpec:
        if (self.grid is None) == (self.runs is None):
            raise ValueError("give either grid: {KEY.PATH: [values]} or runs: [{name: ..., set: [...]}], not both")
        if self.runs is not None:
            if not self.runs:
                raise ValueError("runs: is empty")
        without = [run.name for run in self.runs or [] if run.experiment is None]
        if self.base is None and (self.grid is not None or without):
            who = "a grid" if self.grid is not None else f"run(s) {', '.join(without)} without experiment:"
            raise ValueError(f"base: is required for {who}")
        return self


@dataclass
class Combination:
    """One run of a sweep, validated."""

    index: int
    name: str
    experiment_file: Path
    overrides: list[str]
    reported: float | None
    experiment: Experiment
    run_dir: Path


@dataclass
class Sweep:
    path: Path
    out: Path
    evaluate: bool
    combinations: list[Combination] = field(default_factory=list)
    #: the command line that runs this sweep, which an interruption's message tells the user to run again
    command: str = ""

    def select(self, names: Sequence[str]) -> list[Combination]:
        """The combinations called ``names`` (all when empty); an unknown name is a :class:`UserError`."""
        if not names:
            return list(self.combinations)
        known = {c.name: c for c in self.combinations}
        unknown = [n for n in names if n not in known]
        if unknown:
            called = ", ".join(f"'{name}'" for name in unknown)
            raise UserError(f"{self.path}: no run called {called}; the runs are: {', '.join(known)}")
        return [known[n] for n in names]


# ---- loading ---------------------------------------------------------------------------------------------
def _value_text(value: Any) -> str:
    """A grid value as an override's VALUE (JSON is valid YAML)."""
    return json.dumps(value)


def _grid_names(grid: dict[str, list[Any]]) -> list[str]:
    """Labels of the grid keys: the last part of the key path, or the whole path where the last parts clash."""
    last = [key.split(".")[-1] for key in grid]
    return [short if last.count(short) == 1 else key for key, short in zip(grid, last, strict=True)]


class _Planned(NamedTuple):
    """A combination before validation: its overrides carry their source (a line of the sweep file)."""

    name: str
    experiment_file: str | None
    overrides: list[tuple[str, str]]
    reported: float | None


def _listed_runs(spec: SweepSpec, positions: Positions, src: str) -> list[_Planned]:
    return [
        _Planned(
            run.name,
            run.experiment,
            [(text, positions.get(("runs", r, "set", i), src)) for i, text in enumerate(run.set)],
            run.reported,
        )
        for r, run in enumerate(spec.runs or [])
    ]


def _grid_runs(spec: SweepSpec, positions: Positions, src: str) -> list[_Planned]:
    grid = spec.grid or {}
    labels = _grid_names(grid)
    runs = []
    choices = [list(enumerate(values)) for values in grid.values()]
    for combo in itertools.product(*choices):
        overrides, parts = [], []
        for key, label, (i, value) in zip(grid, labels, combo, strict=True):
            overrides.append((f"{key}={_value_text(value)}", positions.get(("grid", key, i), src)))
            text = str(value) if isinstance(value, int | float) else _UNSAFE.sub("-", str(value)).strip("-")
            parts.append(f"{label}={text}")
        runs.append(_Planned(",".join(parts), None, overrides, None))
    names = [run.name for run in runs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(
            ConfigIssue(
                positions.get(("grid",), src),
                "grid",
                f"values give clashing run names: {', '.join(repeated)}; use runs: with explicit names",
            )
        )
    return runs


def _apply(data: dict, positions: Positions, overrides: list[tuple[str, str]]) -> None:
    """Apply overrides, each reported at its own source (a sweep file line, or ``--set ...``)."""
    for text, source in overrides:
        try:
            apply_overrides(data, positions, [text])
        except ConfigError as exc:
            raise ConfigError([ConfigIssue(source, i.path, i.message) for i in exc.issues]) from None
        for key, value in positions.items():
            if value == f"--set {text}":
                positions[key] = source


#: settings a sweep's runs (each in one process) do not depend on: a run stored with another value (one made
#: before the default changed) is the same run
NO_EFFECT_IN_ONE_PROCESS = {"model.sync_batchnorm"}


def _stored_mismatch(run_dir: Path, experiment: Experiment) -> str | None:
    """Why ``run_dir`` cannot hold this combination (another config, or not a run directory), or None."""
    if not run_dir.exists() or is_unused(run_dir):
        return None
    stored_file = run_dir / CONFIG_FILE
    if not is_run_dir(run_dir) or not stored_file.is_file():
        return (
            f"{run_dir} exists but is not a run directory (no {RUN_MARKER} or no {CONFIG_FILE}); "
            "move it away or choose another --out"
        )
    stored = _flat(_with_new_defaults(run_dir_config(run_dir)))
    wanted = _flat(resolved_dict(experiment))
    differ = sorted(
        key
        for key in stored.keys() | wanted.keys()
        if stored.get(key, ...) != wanted.get(key, ...) and key not in NO_EFFECT_IN_ONE_PROCESS
    )
    if _longer(stored.get(EPOCHS_KEY), wanted[EPOCHS_KEY]):
        if read_record(run_dir).get("status") == "trained" and not last_checkpoint(run_dir).is_file():
            return (
                f"{run_dir} trained {stored[EPOCHS_KEY]} epochs but its checkpoints were removed, so it cannot "
                f"train on to {wanted[EPOCHS_KEY]}; remove that run directory to train it from scratch, or keep "
                f"train.epochs={stored[EPOCHS_KEY]}"
            )
        differ.remove(EPOCHS_KEY)  # more epochs than before: the run resumes and trains on
    if not differ:
        return None
    trained = stored.get(EPOCHS_KEY)
    if differ == [EPOCHS_KEY] and isinstance(trained, int) and trained > wanted[EPOCHS_KEY]:
        return (
            f"{run_dir} is configured for train.epochs={trained}, more than the {wanted[EPOCHS_KEY]} asked now, and "
            f"a run cannot train fewer epochs than that: ask for train.epochs={trained} (or more) with --set or in "
            "the sweep file's set: list (a sweep extended with --set train.epochs needs it on every later run), or "
            "give the sweep another out"
        )
    shown = ", ".join(differ[:5]) + (", ..." if len(differ) > 5 else "")
    return (
        f"{run_dir} was started with another configuration (differs at {shown}); "
        "restore the setting, remove that run directory, or choose another --out"
    )


def _longer(stored: Any, wanted: int) -> bool:
    return isinstance(stored, int) and wanted > stored


def _with_new_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """A run's stored config with the defaults of settings added since it was written (as a resume reads it), so
    that a new setting left at its default is no change; as stored where it no longer validates."""
    try:
        return resolved_dict(experiment_from_dict(stored, [], stored=True))
    except ConfigError:
        return stored


def check_run_dirs(sweep: Sweep, combos: Sequence[Combination]) -> None:
    """Refuse (before anything runs) run directories that hold another configuration or are not run directories,
    and a sweep directory that is a file."""
    if sweep.out.exists() and not sweep.out.is_dir():
        raise UserError(f"{sweep.out} is a file, not a folder for the sweep's runs; choose another out: (or --out)")
    issues = [
        ConfigIssue(str(sweep.path), "", why) for c in combos if (why := _stored_mismatch(c.run_dir, c.experiment))
    ]
    if issues:
        raise ConfigError(issues)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        return {k: v for key, value in data.items() for k, v in _flat(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): data}


def _repeated_names(spec: SweepSpec, positions: Positions, src: str) -> list[ConfigIssue]:
    """An issue at each run whose name an earlier run already has (their run directories would be one)."""
    first: dict[str, int] = {}
    issues = []
    for index, run in enumerate(spec.runs or []):
        if run.name in first:
            where = positions.get(("runs", index, "name"), src)
            message = f"'{run.name}' is the name of run {first[run.name]} too; run names must be unique"
            issues.append(ConfigIssue(where, f"runs.{index}.name", message))
        first.setdefault(run.name, index)
    return issues


def load_sweep(path: str | Path, overrides: Sequence[str] = (), out: str | Path | None = None) -> Sweep:
    """Read a sweep file and validate every combination.

    Every problem of every combination is reported together in one :class:`ConfigError`, before anything runs.
    """
    path = Path(path)
    data, positions = load_yaml(path, "a sweep YAML file")
    src = str(path)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_issues(exc, (), positions, SweepSpec)) from None
    repeated = _repeated_names(spec, positions, src)
    if repeated:
        raise ConfigError(repeated)
    out_dir = Path(out or spec.out or Path("runs") / path.stem)
    sweep = Sweep(path, out_dir, spec.eval)
    common = [(text, positions.get(("set", i), src)) for i, text in enumerate(spec.set)]
    cli = [(text, f"--set {text}") for text in overrides]
    runs = _listed_runs(spec, positions, src) if spec.runs is not None else _grid_runs(spec, positions, src)
    issues: dict[tuple[str, str, str], list[str]] = {}
    files: dict[Path, tuple[dict, Positions] | ConfigError] = {}
    for index, (name, own_file, own, reported) in enumerate(runs):
        experiment_file = path.parent / (own_file or spec.base or "")
        if experiment_file not in files:
            try:
                files[experiment_file] = load_yaml(experiment_file)
            except ConfigError as exc:  # said at the line that names the file
                key = ("runs", index, "experiment") if own_file else ("base",)
                where = positions.get(key, src)
                files[experiment_file] = ConfigError([ConfigIssue(where, ".".join(map(str, key)), str(exc))])
        loaded = files[experiment_file]
        try:
            if isinstance(loaded, ConfigError):
                raise loaded
            shadowed = _shadowed(own, cli)
            if shadowed:
                raise ConfigError(shadowed)
            raw, raw_positions = loaded
            run_data, run_positions = copy.deepcopy(raw), dict(raw_positions)
            run_data["name"] = name
            _apply(run_data, run_positions, common + own + cli)
            validated = validate(run_data, run_positions)
        except ConfigError as exc:
            for issue in exc.issues:
                issues.setdefault((issue.source, issue.path, issue.message), []).append(name)
            continue
        texts = [text for text, _ in common + own + cli]
        sweep.combinations.append(Combination(index, name, experiment_file, texts, reported, validated, out_dir / name))
    if issues:
        raise ConfigError([_annotated(key, names, len(runs)) for key, names in issues.items()])
    for issue in _same_experiments(sweep.combinations, spec, positions, src):
        log.warning("%s", issue)
    return sweep


def _override_key(text: str) -> tuple[str, ...]:
    """The dotted key of a ``KEY.PATH=VALUE`` override, part by part, as :func:`apply_overrides` reads it."""
    return tuple(part.strip() for part in text.split("=", 1)[0].split("."))


def _sets(text: str, key: tuple[str, ...]) -> bool:
    """Whether override ``text`` gives a value at ``key``: its own key, or a key inside the section it gives."""
    own_key = _override_key(text)
    if key[: len(own_key)] != own_key:
        return False
    try:
        value = yaml.safe_load(text.split("=", 1)[1])
    except yaml.YAMLError:
        return False
    for part in key[len(own_key) :]:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _shadowed(own: list[tuple[str, str]], later: list[tuple[str, str]]) -> list[ConfigIssue]:
    """An issue for each of a run's own overrides (its grid values or its set: entries) that a later one replaces:
    at its key, at a section above it, or at a key its section value gives (``loss.temperature`` after
    ``loss={name: nt_xent, temperature: 0.1}``). The run would not train what its entry, and a grid run's name,
    say."""
    issues = []
    for position, (text, _) in enumerate(own):
        key = _override_key(text)
        for later_text, later_source in own[position + 1 :] + later:
            replacing = _override_key(later_text)
            if key[: len(replacing)] == replacing or _sets(text, replacing):
                shown = ".".join(max(key, replacing, key=len))  # what is replaced: the deeper of the two keys
                message = (
                    f"replaces {shown}, which the run's own entry in the sweep file sets, so the run would not train "
                    "what that entry (and a grid run's name) says; drop one of the two"
                )
                issues.append(ConfigIssue(later_source, ".".join(replacing), message))
                break
    return issues


def _same_experiments(
    combos: Sequence[Combination], spec: SweepSpec, positions: Positions, src: str
) -> list[ConfigIssue]:
    """An issue for each run that trains the same experiment as an earlier one (say grid values 1 and 1.0, or
    rows of a study made alike by the sweep's set:, as in a smaller copy of it): warned of, as it costs a run."""
    first: dict[str, Combination] = {}
    issues = []
    for combo in combos:
        experiment = {key: value for key, value in resolved_dict(combo.experiment).items() if key != "name"}
        earlier = first.setdefault(json.dumps(experiment, sort_keys=True), combo)
        if earlier is not combo:
            where = positions.get(("runs", combo.index, "name") if spec.runs is not None else ("grid",), src)
            message = f"run {combo.name} trains the same experiment as run {earlier.name}"
            issues.append(ConfigIssue(where, "", message))
    return issues


def _annotated(key: tuple[str, str, str], names: list[str], total: int) -> ConfigIssue:
    source, path, message = key
    if len(names) == total > 1:
        which = "every run"
    elif len(names) > 3:
        which = f"{len(names)} runs"
    else:
        which = ("runs " if len(names) > 1 else "run ") + ", ".join(names)
    return ConfigIssue(f"{source} ({which})" if source else f"({which})", path, message)


# ---- state of a run directory ----------------------------------------------------------------------------
def read_record(run_dir: Path) -> dict[str, Any]:
    """The run's sweep.json; {} when it is missing or damaged (not a JSON object)."""
    return read_json_object(run_dir / SWEEP_RECORD) or {}


def _write_record(combo: Combination, sweep: Sweep, status: str, error: str | None = None) -> None:
    record = {**_entry(combo, sweep), "status": status}
    if error:
        record["error"] = error
    write_json(record, combo.run_dir / SWEEP_RECORD)


def _entry(combo: Combination, sweep: Sweep) -> dict[str, Any]:
    """What the sweep file says of ``combo``, as its sweep.json keeps it."""
    return {
        "name": combo.name,
        "index": combo.index,
        "sweep": str(sweep.path),
        "experiment": str(combo.experiment_file),
        "overrides": combo.overrides,
        "reported": combo.reported,
    }


def refresh_records(sweep: Sweep) -> None:
    """Bring the sweep.json of every run that trained before (those --only leaves out too) up to date with the
    sweep file as it is now: its ``reported:`` numbers and the order of its runs, which the report shows. How each
    run went is kept; a run directory that holds another configuration is left alone."""
    for combo in sweep.combinations:
        record = read_record(combo.run_dir)
        updated = {**record, **_entry(combo, sweep)}
        if record and updated != record and not _stored_mismatch(combo.run_dir, combo.experiment):
            write_json(updated, combo.run_dir / SWEEP_RECORD)


def run_state(combo: Combination, evaluate: bool) -> str:
    """``finished``, ``failed`` (training diverged), ``evaluate`` (trained, with no eval.json of its last
    checkpoint), ``resume`` (a checkpoint short of the end, also of a run now asked to train more epochs) or
    ``new``."""
    status = read_record(combo.run_dir).get("status")
    if status == "failed":
        return "failed"
    from simclr.checkpoint import load_checkpoint

    checkpoint = last_checkpoint(combo.run_dir)
    if not checkpoint.is_file():
        if status != "trained":
            return "new"
        trained = None  # its checkpoints were removed after training: what it evaluated stands
    else:
        state = load_checkpoint(checkpoint, mmap=True)
        trained = state["epoch"]
        if status != "trained" or trained < combo.experiment.train.epochs:
            return "resume"
    if evaluate and not _evaluated(combo.run_dir, trained):
        return "evaluate"
    return "finished"


def _evaluated(run_dir: Path, epoch: int | None) -> bool:
    """Whether ``run_dir`` has an eval.json of the checkpoint that trained ``epoch`` epochs (None: of any)."""
    result = read_json_object(run_dir / EVAL_FILE)
    return result is not None and (epoch is None or result.get("epoch") == epoch)


# ---- running ---------------------------------------------------------------------------------------------
class SweepInterrupted(SimCLRError):
    """Ctrl-C (or SIGTERM) stopped the sweep; the run in progress saved a checkpoint."""

    exit_code = 130


def _stopped(sweep: Sweep, combo: Combination | None) -> SweepInterrupted:
    where = f" during run {combo.name} (its checkpoint is kept)" if combo else ""
    return SweepInterrupted(
        f"sweep stopped{where}; run `{sweep.command or f'simclr sweep {sweep.path}'}` again to continue: finished "
        "runs are skipped and the interrupted one resumes"
    )


def run_combination(sweep: Sweep, combo: Combination, device: str | None = None, show_progress: bool = True) -> str:
    """Train (or resume) and evaluate one combination as its state requires; returns its final state."""
    from simclr.runtime import free_memory
    from simclr.trainer import Trainer

    state = run_state(combo, sweep.evaluate)
    if state in ("finished", "failed"):
        log.info("sweep: %s: %s before, skipped", combo.name, state)
        return state
    if state in ("new", "resume"):
        log.info("sweep: %s: %s", combo.name, "starting" if state == "new" else "resuming its checkpoint")
        trainer = Trainer(
            combo.experiment,
            combo.run_dir,
            resume=state == "resume",
            overwrite=state == "new",
            device=device,
            show_progress=show_progress,
        )
        try:
            trainer.fit()
        except TrainingError as exc:
            _write_record(combo, sweep, "failed", str(exc))
            log.error("sweep: %s failed: %s", combo.name, exc)
            return "failed"
        finally:
            trained_on = trainer.runtime.device
            del trainer
            free_memory(trained_on)
        _write_record(combo, sweep, "trained")
    if sweep.evaluate:
        from simclr.evaluate import evaluate_run

        log.info("sweep: %s: evaluating", combo.name)
        evaluate_run(combo.run_dir, device=device or "auto", progress=show_progress)
    return "finished"


def run_sequential(
    sweep: Sweep, combos: Sequence[Combination], device: str | None = None, show_progress: bool = True
) -> dict[str, str]:
    """Run ``combos`` one after another in this process; returns each one's final state."""
    from simclr.trainer import Interrupted

    states: dict[str, str] = {}
    for position, combo in enumerate(combos, 1):
        log.info("sweep: run %d/%d: %s", position, len(combos), combo.name)
        try:
            states[combo.name] = run_combination(sweep, combo, device, show_progress)
        except (Interrupted, KeyboardInterrupt):
            raise _stopped(sweep, combo) from None
    return states


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:count] if listed else [str(i) for i in range(count)]


def run_parallel(
    sweep: Sweep,
    combos: Sequence[Combination],
    gpus: Sequence[str],
    command: Callable[[Combination], list[str]],
    poll_seconds: float = 1.0,
) -> dict[str, str]:
    """Run each combination as ``command(combo)`` in a subprocess that sees one GPU, one per GPU at a time.

    A child's output goes to ``<sweep dir>/logs/<name>.log``. Ctrl-C reaches the children too (same process
    group); SIGTERM to this process, or a child stopped alone (exit 130), is passed on to the others as SIGTERM:
    each saves its checkpoint, and this waits for them before raising :class:`SweepInterrupted`.
    """
    pending = [c for c in combos if run_state(c, sweep.evaluate) not in ("finished", "failed")]
    logs = sweep.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    free = list(gpus)
    running: dict[str, tuple[subprocess.Popen, str]] = {}
    with sigterm_as_interrupt():  # as it is when `simclr sweep` runs this, for any caller
        try:
            while pending or running:
                while pending and free:
                    combo, gpu = pending.pop(0), free.pop(0)
                    env = {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
                    with open(logs / f"{combo.name}.log", "a") as handle:
                        process = subprocess.Popen(command(combo), env=env, stdout=handle, stderr=subprocess.STDOUT)
                    log.info("sweep: %s on GPU %s (log: %s)", combo.name, gpu, logs / f"{combo.name}.log")
                    running[combo.name] = (process, gpu)
                time.sleep(poll_seconds)
                for name, (process, gpu) in list(running.items()):
                    code = process.poll()
                    if code is None:
                        continue
                    del running[name]
                    free.append(gpu)
                    if code == 130:
                        raise KeyboardInterrupt
                    if code != 0:
                        log.error("sweep: %s exited with status %d; see %s", name, code, logs / f"{name}.log")
        except KeyboardInterrupt:
            for process, _ in running.values():
                if process.poll() is None:  # one that Ctrl-C reached already is stopping: this changes nothing there
                    process.send_signal(signal.SIGTERM)
            for process, _ in running.values():
                process.wait()
            raise _stopped(sweep, None) from None
    return {c.name: run_state(c, sweep.evaluate) for c in combos}


def child_command(sweep: Sweep, combo: Combination, overrides: Sequence[str]) -> list[str]:
    """The `simclr sweep` command that runs only ``combo`` (what each GPU's subprocess runs, on its one GPU)."""
    command = [sys.executable, "-m", "simclr", "sweep", str(sweep.path), "--out", str(sweep.out)]
    command += ["--only", combo.name, "--no-report", "--no-progress"]
    for text in overrides:
        command += ["--set", text]
    return command
