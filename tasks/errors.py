"""Errors of the task layer: bad input is refused before any Docker resource is created."""

from __future__ import annotations


class TaskInputError(ValueError):
    """Raised when a run request is invalid (unknown tool, bad ids, params, files or sizes); never retried."""


class RedeliveryLimitError(RuntimeError):
    """Raised when a task was delivered again after its worker died more often than allowed."""
