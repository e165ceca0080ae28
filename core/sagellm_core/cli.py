"""The `sagellm` command.

Subcommands are discovered through the ``sagellm.commands`` entry-point group, so each package
(operator, router, simulator) contributes its own command without core importing it.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import click

COMMAND_GROUP = "sagellm.commands"


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}


class PluginGroup(click.Group):
    """A click group whose subcommands are loaded lazily from entry points."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_entry_points()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        builtin = super().get_command(ctx, cmd_name)
        if builtin is not None:
            return builtin
        ep = _entry_points().get(cmd_name)
        if ep is None:
            return None
        try:
            loaded = ep.load()
        except (ImportError, AttributeError) as exc:
            return _unavailable(cmd_name, f"{ep.value}: {exc}")
        if not isinstance(loaded, click.Command):
            return _unavailable(cmd_name, f"entry point {ep.value} is not a click command")
        return loaded


def _unavailable(name: str, reason: str) -> click.Command:
    """A command that explains why a subcommand could not be loaded instead of crashing help."""

    def fail() -> None:
        raise click.ClickException(
            f"subcommand {name!r} is not available in this installation ({reason}); "
            "reinstall with `pip install -e .`"
        )

    return click.Command(name, callback=fail, short_help="(unavailable in this installation)")


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sagellm-control-plane")
def main() -> None:
    """sageLLM control plane: operator, router, simulator and planner for vLLM on Kubernetes."""
