"""Errors the CLI turns into one line on stderr and a fixed exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_INPUT = 2


class InputError(Exception):
    """Bad user input (file, row, key, flag): one clear line, exit code 2, nothing half-written.

    The message must say what is wrong and where (file, row, key) on a single line.
    """

    exit_code = EXIT_INPUT


class RunFailed(Exception):
    """A run (or a run the command waited for) ended failed: exit code 1."""

    exit_code = EXIT_RUN_FAILED


class DamagedStore(InputError):
    """The run store's database file is damaged: one line naming it and how to recover it; never written to."""


def config_error(exc: ValidationError, what: str) -> InputError:
    """A run config's validation error as one line: ``WHAT: dotted.key: problem`` (the first problem pydantic
    found; a list entry's own index reads ``WHAT: key[1]: problem``)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "config"
    msg = err["msg"].removeprefix("Value error, ")
    return InputError(f"{what}: {where}{'' if msg.startswith('[') else ': '}{msg}")
