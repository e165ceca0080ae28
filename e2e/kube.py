"""The kind backend of the shared scenarios: kubectl pinned to one context, and a port-forward.

Every kubectl call passes ``--context`` explicitly, and ``guard_context`` refuses to start unless
that context exists and points at the kind cluster this suite created, so a stray kubeconfig
can never aim the suite (which deletes things) at a real cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

CONTEXT = "kind-sagellm-e2e"
Obj = dict[str, Any]


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message carries its stderr."""


class ContextRefused(Exception):
    """The kubectl context is not the suite's own local kind cluster."""


async def kubectl(context: str, *args: str, stdin: str | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--context", context, *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    if proc.returncode != 0:
        raise KubectlError(f"kubectl {' '.join(args)}: {err.decode().strip()}")
    return out.decode()


def guard_context(context: str = CONTEXT) -> None:
    """Refuse any context but the suite's own kind cluster."""
    if context != CONTEXT:
        raise ContextRefused(f"refusing to run e2e against context {context!r}; only {CONTEXT!r}")
    raw = subprocess.run(
        ["kubectl", "--context", context, "config", "view", "--minify", "-o", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if raw.returncode != 0:
        raise ContextRefused(f"kubectl context {context} is not usable: {raw.stderr.strip()}")
    cluster = json.loads(raw.stdout)["clusters"][0]
    server = cluster["cluster"]["server"]
    if cluster["name"] != CONTEXT or not re.match(
        r"^https://(127\.0\.0\.1|localhost):\d+$", server
    ):
        raise ContextRefused(
            f"context {context} points at {cluster['name']} {server}, not local kind"
        )


@dataclass
class KindCluster:
    """``scenarios.Cluster`` over kubectl; the router URL comes from a port-forward."""

    namespace: str
    router_url: str = ""
    context: str = CONTEXT

    async def _k(self, *args: str, stdin: str | None = None) -> str:
        return await kubectl(self.context, "-n", self.namespace, *args, stdin=stdin)

    async def apply(self, manifest: Obj) -> None:
        await self._k("apply", "--server-side", "--field-manager=sagellm-e2e", "-f", "-",
                      stdin=json.dumps(manifest))  # fmt: skip

    async def get(self, plural: str, name: str) -> Obj | None:
        out = await self._k("get", plural, name, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    async def list(self, plural: str, selector: str = "") -> list[Obj]:
        args = ["get", plural, "-o", "json"] + (["-l", selector] if selector else [])
        items: list[Obj] = json.loads(await self._k(*args))["items"]
        return items

    async def patch(self, plural: str, name: str, patch: Obj) -> None:
        await self._k("patch", plural, name, "--type=merge", "-p", json.dumps(patch))

    async def delete(self, plural: str, name: str) -> None:
        await self._k("delete", plural, name, "--ignore-not-found", "--wait=false")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def port_forward(context: str, namespace: str, target: str, remote_port: int) -> Iterator[str]:
    """``kubectl port-forward`` to ``target`` (e.g. svc/x); yields http://127.0.0.1:<port>."""
    port = free_port()
    proc = subprocess.Popen(
        ["kubectl", "--context", context, "-n", namespace, "port-forward", target,
         f"{port}:{remote_port}", "--address", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:<port> -> <remote>"
        if "Forwarding from" not in line:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise KubectlError(f"port-forward {target}: {line!r} {err}")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def dump_state(context: str, namespaces: list[str]) -> str:
    """Pods, events, logs and CR status, for a failure report."""
    sections = []
    for ns in namespaces:
        for args in (
            ["get", "pods,svc,deploy,inferencepools,executioninstances", "-o", "wide"],
            ["get", "events", "--sort-by=.lastTimestamp"],
            ["get", "inferencepools,executioninstances", "-o", "yaml"],
            ["logs", "-l", "app.kubernetes.io/part-of=sagellm", "--all-containers",
             "--prefix", "--tail=200"],
            ["logs", "-l", "sagellm.io/pool", "--all-containers", "--prefix", "--tail=50"],
        ):  # fmt: skip
            proc = subprocess.run(
                ["kubectl", "--context", context, "-n", ns, *args],
                capture_output=True, text=True, check=False, timeout=60,
            )  # fmt: skip
            sections.append(f"===== kubectl -n {ns} {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    return "\n".join(sections)
