"""Helpers shared by the CLI commands: consoles, exit codes, running coroutines.

Exit codes: 0 success, 1 the operation ran but something failed (e.g. a job), 2 bad usage
or configuration (a bad environment variable prints one line naming it).
"""

from __future__ import annotations

from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from cronicorn.client.errors import ApiError
from cronicorn.errors import BackendUnavailableError, ConfigError, CronicornError, NotFoundError
from cronicorn.runtime import eventloop

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_USAGE = 2

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class CliError(CronicornError):
    """A user-facing failure: printed as one line, exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print `message` as one line on stderr and exit with `code`."""
    err_console.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine (on uvloop where installed: `cronicorn.runtime.eventloop`);
    configuration and user errors, the API's error answers (its
    own message) and an unreachable API become one line + exit code instead of a traceback."""
    try:
        return eventloop.run(coro)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    except CliError as exc:
        fail(str(exc), exc.code)
    except (NotFoundError, ApiError, BackendUnavailableError) as exc:
        fail(str(exc), EXIT_FAILED)


@contextmanager
def exit_on_config_error() -> Iterator[None]:
    """For the synchronous commands (`serve`, `db`, `keys`): a ConfigError becomes one line
    and exit code 2, as `run` does for the async ones."""
    try:
        yield
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def new_typer(help_text: str) -> typer.Typer:
    """A Typer app with the project's defaults (no locals in tracebacks: they hold secrets)."""
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
        rich_markup_mode=None,
    )
