"""Third-party plugins: routing strategies and scheduling policies added without editing sageLLM.

Two ways to provide one (docs/custom-scheduling.md):

* an **entry point** of an installed distribution, in group ``sagellm.routing_strategies`` or
  ``sagellm.scheduling_policies``; the entry point's name is the plugin's name and its object
  the factory;
* a **reference** ``"package.module:attribute"`` (the router config's ``plugins:`` list) to a
  factory marked with ``@plugin(kind, name)``.

A routing-strategy factory takes a ``StrategyContext`` and returns an object with
``pick(request, candidates, loads)``; a scheduling-policy factory takes ``PolicySettings`` and
returns a ``SchedulingPolicy`` (``name``, ``observe``, ``order_key``, ``placement``,
``should_shed``). ``discover`` validates what it can before anything runs (import errors name
the module, the object must be callable, names must not clash with built-ins or each other);
``check_interface`` validates a factory's product. Every problem is a ``PluginError`` naming
the plugin's source. Only ``importlib`` is used: no I/O beyond importing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

ROUTING_STRATEGY = "routing_strategy"
SCHEDULING_POLICY = "scheduling_policy"
GROUPS = {
    ROUTING_STRATEGY: "sagellm.routing_strategies",
    SCHEDULING_POLICY: "sagellm.scheduling_policies",
}
INTERFACES = {
    ROUTING_STRATEGY: ("pick",),
    SCHEDULING_POLICY: ("observe", "order_key", "placement", "should_shed"),
}
_MARK = "__sagellm_plugin__"

F = TypeVar("F", bound=Callable[..., Any])
EntryPoints = Callable[[str], Iterable[importlib.metadata.EntryPoint]]


class PluginError(Exception):
    """A plugin cannot be used; the message names its source and what is wrong."""


@dataclass(frozen=True, slots=True)
class Plugin:
    """A validated plugin: its kind, name, factory and where it came from (for messages)."""

    kind: str
    name: str
    factory: Callable[..., Any]
    source: str


def plugin(kind: str, name: str) -> Callable[[F], F]:
    """Mark a factory so that a ``"module:attribute"`` reference knows its kind and name."""
    _check_kind(kind)
    if not name.isidentifier():
        raise PluginError(f"plugin name {name!r} must be an identifier (letters, digits, _)")

    def mark(factory: F) -> F:
        setattr(factory, _MARK, (kind, name))
        return factory

    return mark


def _check_kind(kind: str) -> None:
    if kind not in GROUPS:
        raise PluginError(f"unknown plugin kind {kind!r}; known: {', '.join(sorted(GROUPS))}")


def resolve(reference: str) -> object:
    """Import ``"package.module:attribute"`` (the attribute may be dotted)."""
    module_name, sep, attr = reference.strip().partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(
            f"plugin reference {reference!r} must look like 'package.module:attribute'"
        )
    try:
        obj: object = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure of third-party code
        raise PluginError(
            f"plugin {reference!r}: cannot import module {module_name!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise PluginError(
                f"plugin {reference!r}: module {module_name!r} has no attribute {attr!r}"
            ) from exc
    return obj


def _callable(obj: object, source: str) -> Callable[..., Any]:
    if not callable(obj):
        raise PluginError(
            f"plugin {source}: {type(obj).__name__} object is not callable; a plugin must be a "
            "factory (a function or class)"
        )
    return obj


def from_reference(reference: str) -> Plugin:
    """The plugin a ``"module:attribute"`` reference names (marked with ``@plugin``)."""
    factory = _callable(resolve(reference), repr(reference))
    mark = getattr(factory, _MARK, None)
    if not (isinstance(mark, tuple) and len(mark) == 2):
        raise PluginError(
            f"plugin {reference!r} is not marked with @plugin(kind, name) from "
            "sagellm_core.plugins; mark it or publish it as an entry point"
        )
    kind, name = mark
    return Plugin(str(kind), str(name), factory, repr(reference))


def from_entry_points(kind: str, entry_points: EntryPoints | None = None) -> list[Plugin]:
    """Plugins of ``kind`` published by installed distributions (entry-point group)."""
    _check_kind(kind)
    group = GROUPS[kind]
    found = (entry_points or _installed)(group)
    plugins = []
    for ep in sorted(found, key=lambda e: e.name):
        source = f"entry point {ep.name!r} = {ep.value!r} (group {group})"
        try:
            obj = ep.load()
        except Exception as exc:
            module = ep.value.partition(":")[0]
            raise PluginError(
                f"plugin {source}: cannot import module {module!r}: {type(exc).__name__}: {exc}"
            ) from exc
        plugins.append(Plugin(kind, ep.name, _callable(obj, source), source))
    return plugins


def _installed(group: str) -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=group)


def discover(
    kind: str,
    references: Iterable[str] = (),
    builtins: Collection[str] = (),
    entry_points: EntryPoints | None = None,
) -> dict[str, Plugin]:
    """All plugins of ``kind`` (entry points, then references), name -> plugin; validated.

    References of another kind are skipped (one ``plugins:`` list serves both registries).
    """
    plugins = from_entry_points(kind, entry_points)
    plugins += [p for p in (from_reference(r) for r in references) if p.kind == kind]
    chosen: dict[str, Plugin] = {}
    for item in plugins:
        if item.name in builtins:
            raise PluginError(
                f"plugin {item.source} is named {item.name!r}, which is a built-in "
                f"{kind.replace('_', ' ')}; choose another name"
            )
        if item.name in chosen:
            raise PluginError(
                f"two plugins are named {item.name!r}: {chosen[item.name].source} and {item.source}"
            )
        chosen[item.name] = item
    return chosen


def check_interface(item: Plugin, product: object) -> None:
    """Raise ``PluginError`` unless ``product`` (what the factory made) has the kind's methods."""
    missing = [m for m in INTERFACES[item.kind] if not callable(getattr(product, m, None))]
    if missing:
        raise PluginError(
            f"plugin {item.source}: its factory returned {type(product).__name__}, which lacks "
            f"{', '.join(missing)}(); a {item.kind.replace('_', ' ')} needs "
            f"{', '.join(INTERFACES[item.kind])}"
        )


def build(item: Plugin, *args: Any) -> Any:
    """Call the plugin's factory and check the product; failures become ``PluginError``."""
    try:
        product = item.factory(*args)
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(
            f"plugin {item.source}: its factory failed: {type(exc).__name__}: {exc}"
        ) from exc
    check_interface(item, product)
    return product
