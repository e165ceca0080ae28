"""`sagellm router --config FILE`."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time

import click

from sagellm_router.config import ConfigError, RouterSettings, load_settings


class JsonFormatter(logging.Formatter):
    """One JSON object per log line (structured logs); extra fields are included."""

    _SKIP = set(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self._SKIP})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def run_event_loop(main: object) -> None:
    """Run a coroutine on uvloop when it is installed, else on the default loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)  # type: ignore[arg-type]
        return
    uvloop.run(main)  # type: ignore[arg-type]


def check_plugins_and_names(settings: RouterSettings, source: str) -> None:
    """Fail before serving on a bad plugin or an unknown strategy/policy name."""
    from sagellm_core.plugins import PluginError
    from sagellm_router.state import build_state

    try:
        build_state(settings, time.monotonic)
    except (PluginError, ValueError) as exc:
        raise click.ClickException(f"{source}: {exc}") from exc


@click.command("router")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--host", default=None, help="override server.host")
@click.option("--port", default=None, type=int, help="override server.port")
@click.option("--log-level", default="info", show_default=True)
def router(config_path: str, host: str | None, port: int | None, log_level: str) -> None:
    """Run the OpenAI-compatible router described by the YAML file CONFIG."""
    from sagellm_router.server import serve

    setup_logging(log_level)
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    check_plugins_and_names(settings, config_path)
    overrides = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    if overrides:
        server = settings.server.model_copy(update=overrides)
        settings = settings.model_copy(update={"server": server})
    run_event_loop(serve(settings, config_path))
