"""Errors meant for users: each carries a message that says what is wrong, where, and what to do."""

from __future__ import annotations

from dataclasses import dataclass


class SimCLRError(Exception):
    """Base class of every error the `simclr` command reports without a traceback."""

    exit_code = 1


class UserError(SimCLRError):
    """Bad input (config, arguments, missing data, unreadable checkpoint): exit 2, nothing written."""

    exit_code = 2


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in an experiment: where it came from (``exp.yaml:12`` or ``--set a.b=c``), the dotted path
    inside the experiment and the message."""

    source: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        what = f"{self.path}: " if self.path else ""
        return f"{where}{what}{self.message}"


#: the pydantic error type of a component reference (e.g. a loss's ``miner``) whose params are wrong; its context
#: holds the (dotted path below the reference, message) of each issue
COMPONENT_REF_ERROR = "component_ref"
#: the JSON Schema key that marks a component reference with its kind, until the experiment's schema expands it
COMPONENT_REF_SCHEMA_KEY = "x-simclr-component"


class ConfigError(UserError):
    """One or more problems in an experiment configuration."""

    def __init__(self, issues: list[ConfigIssue] | ConfigIssue | str):
        if isinstance(issues, str):
            issues = [ConfigIssue("", "", issues)]
        elif isinstance(issues, ConfigIssue):
            issues = [issues]
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class PluginError(SimCLRError):
    """A plugin misbehaved (duplicate name, broken hook, factory returning the wrong type)."""

    exit_code = 2


class TrainingError(SimCLRError):
    """A run failed while training (e.g. a non-finite loss): exit 1."""


class AnotherRankFailed(SimCLRError):
    """Raised on the ranks of a distributed run that did not fail themselves, when another rank failed where they
    cannot go on without it: it carries that rank's message and exit status, so the run stops as one process
    would (and `--nproc` shows the message once)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
