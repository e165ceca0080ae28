"""kind e2e fixtures: the context guard, the backend and a state dump on failure.

Run through e2e/run.sh, which creates the cluster, loads the image and installs the chart.
Environment: SAGELLM_E2E_CONTEXT (only kind-sagellm-e2e is accepted), SAGELLM_E2E_NAMESPACE
(where the chart is installed), SAGELLM_E2E_POOL_NAMESPACE (where pools are created),
SAGELLM_E2E_RELEASE (helm release name), SAGELLM_E2E_ARTIFACTS (where dumps are written).
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from e2e.kube import CONTEXT, ContextRefused, KindCluster, dump_state, guard_context, port_forward

CTX = os.environ.get("SAGELLM_E2E_CONTEXT", CONTEXT)
SYSTEM_NS = os.environ.get("SAGELLM_E2E_NAMESPACE", "sagellm-system")
POOL_NS = os.environ.get("SAGELLM_E2E_POOL_NAMESPACE", "sagellm-e2e")
RELEASE = os.environ.get("SAGELLM_E2E_RELEASE", "sagellm")
ARTIFACTS = Path(os.environ.get("SAGELLM_E2E_ARTIFACTS", "e2e-artifacts"))


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        guard_context(CTX)
    except ContextRefused as exc:
        pytest.exit(f"e2e refused to start: {exc}", returncode=2)


@pytest.fixture(scope="session")
def router_url() -> Iterator[str]:
    with port_forward(CTX, SYSTEM_NS, f"svc/{RELEASE}-router", 80) as url:
        yield url


@pytest.fixture
def cluster(router_url: str) -> KindCluster:
    return KindCluster(namespace=POOL_NS, router_url=router_url, context=CTX)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and call.when == "call":
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        state = dump_state(CTX, [SYSTEM_NS, POOL_NS])
        path = ARTIFACTS / f"{item.name}.txt"
        path.write_text(state, encoding="utf-8")
        report.sections.append(("cluster state", f"written to {path}\n{state[-20000:]}"))
    return report
