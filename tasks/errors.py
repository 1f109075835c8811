"""The task layer's exception tree: one root, input errors also ValueError (as isolation's are)."""

from __future__ import annotations


class ToolrunnerError(Exception):
    """Raised for every failure of the task layer that is not an isolation (Docker) error."""


class TaskInputError(ToolrunnerError, ValueError):
    """Raised when a run request is invalid (unknown tool, bad ids, params, files or sizes); never retried."""


class RedeliveryLimitError(ToolrunnerError):
    """Raised when a task was delivered again after its worker died more often than allowed."""


class RunLockTimeoutError(ToolrunnerError):
    """Raised when another delivery of the same task still held its run lock after the longest run."""


class TaskIdentityError(ToolrunnerError):
    """Raised when a task id already stands for another run (tool, tenant or run differ): ids are not reusable."""


class RunStoppedError(ToolrunnerError):
    """Raised inside a run, at its next progress report, when it must stop: the run is cleaned up on the way out."""


class RunCancelledError(RunStoppedError):
    """Raised inside a run that was cancelled (`cancel_run`, `toolrunner cancel` or a revoke with terminate)."""


class RunRequeuedError(RunStoppedError):
    """Raised inside a run whose worker is shutting down: the run is stopped and its message put back on the queue."""


class RunExpiredError(ToolrunnerError):
    """A parked run given up before it started: it waited past max_wait_seconds, or its dispatch kept being lost."""


class ParseError(ToolrunnerError, ValueError):
    """Raised mid-iteration when a record of a tool's output cannot be read; findings yielded before it stand."""


class UserError(ToolrunnerError):
    """Raised when a `toolrunner` command is given something the user can fix: printed as one line, exit code 2."""


class NoBrokerError(ToolrunnerError):
    """Raised when a command needs the broker and TOOLRUNNER_BROKER_URL is not set."""


class TargetError(ToolrunnerError, ValueError):
    """Raised when a target cannot be read without ambiguity; the message says what to write instead."""


class ScopeEntryError(ToolrunnerError, ValueError):
    """Raised when a scope entry is refused: a public suffix, a wildcard, too wide a network or no entry at all."""


class OutOfScopeError(TaskInputError):
    """Raised when a run's targets are not all in its tenant's scope (or are denied): bad input, never retried."""


class UnreachableTargetError(TaskInputError):
    """Raised when a run's tool could not reach a target from its network (loopback unless on the host's network)."""


class IntrusiveToolError(TaskInputError):
    """Raised when an intrusive tool is asked for a tenant no operator opted in: bad input, never retried."""


class HostOverrideError(ToolrunnerError, ValueError):
    """Raised when a per-host override is refused: not an address or CIDR network, or no limit or one out of range."""


class ChunkMergeError(ToolrunnerError):
    """A chunked run's findings could not be merged whole (a chunk's findings missing or not all read back)."""


class WebhookConfigError(ToolrunnerError, ValueError):
    """Raised for a webhook endpoint or secret an operator gave that cannot be used (scheme, form, size)."""
