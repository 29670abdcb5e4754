"""What every subcommand shares: the --config option, config loading with exit 2, exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from rotator import config as config_mod
from rotator.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def config_option(fn: F) -> F:
    return click.option(
        "--config",
        "-c",
        "config_path",
        type=click.Path(dir_okay=False),
        envvar=config_mod.CONFIG_ENV,
        default=str(config_mod.DEFAULT_CONFIG_PATH),
        show_default=True,
        show_envvar=True,
        help="The TOML config file.",
    )(fn)


def fail_usage(message: str) -> NoReturn:
    """Print a usage/config error (no traceback) and exit 2."""
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def load_config(path: str | None) -> config_mod.Config:
    try:
        return config_mod.load(path)
    except ConfigError as exc:
        fail_usage(exc.message)
