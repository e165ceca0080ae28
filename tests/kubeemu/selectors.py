"""Kubernetes label and field selectors, as the API server understands them.

Label selectors follow the documented grammar: equality (``a=b``, ``a==b``, ``a!=b``) and
set-based (``a in (x,y)``, ``a notin (x)``, ``a`` exists, ``!a`` does not exist), comma = AND.
Field selectors support ``metadata.name`` and ``metadata.namespace`` (the fields every resource
supports) plus ``status.phase`` for pods, with ``=``, ``==`` and ``!=``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

_SET_RE = re.compile(r"^\s*([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_RE = re.compile(r"^\s*([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)\s*$")
_EXISTS_RE = re.compile(r"^\s*(!?)\s*([\w./-]+)\s*$")


class SelectorError(ValueError):
    """A selector that does not parse; the API server answers 400 Bad Request."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" match objects without the label too (documented behaviour).
        return not present or value not in self.values


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, current = [], 0, []
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(char)
    terms.append("".join(current))
    return [term for term in terms if term.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    if not text:
        return []
    result = []
    for term in _split_terms(text):
        if m := _SET_RE.match(term):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            result.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_RE.match(term):
            op = "!=" if m.group(2) == "!=" else "="
            result.append(Requirement(m.group(1), op, frozenset([m.group(3)])))
        elif m := _EXISTS_RE.match(term):
            result.append(
                Requirement(m.group(2), "!exists" if m.group(1) else "exists", frozenset())
            )
        else:
            raise SelectorError(f"unable to parse requirement: {term.strip()!r}")
    return result


_FIELDS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "metadata.name": lambda obj: obj.get("metadata", {}).get("name"),
    "metadata.namespace": lambda obj: obj.get("metadata", {}).get("namespace"),
    "status.phase": lambda obj: obj.get("status", {}).get("phase"),
}


def parse_field_selector(text: str | None) -> list[tuple[str, str, str]]:
    if not text:
        return []
    result = []
    for term in _split_terms(text):
        m = _EQ_RE.match(term)
        if not m or m.group(1) not in _FIELDS:
            raise SelectorError(f"field label not supported: {term.strip()!r}")
        result.append((m.group(1), "!=" if m.group(2) == "!=" else "=", m.group(3)))
    return result


@dataclass(frozen=True)
class Selector:
    labels: tuple[Requirement, ...] = ()
    fields: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def parse(cls, label_selector: str | None, field_selector: str | None) -> Selector:
        labels = tuple(parse_label_selector(label_selector))
        return cls(labels, tuple(parse_field_selector(field_selector)))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        if not all(req.matches(labels) for req in self.labels):
            return False
        for field, op, value in self.fields:
            actual = _FIELDS[field](obj)
            if (actual == value) != (op == "="):
                return False
        return True
