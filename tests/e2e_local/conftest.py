"""Local e2e: the repository root on sys.path (for ``tests.kubeemu`` and ``e2e``), the stack
as a module fixture, and process logs attached to failing reports."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
import pytest_asyncio

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from tests.e2e_local.local_cluster import REPORT_LOGS, LocalCluster, reported_cluster  # noqa: E402


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    async with reported_cluster(tmp_path_factory.mktemp("e2e_local")) as c:
        yield c


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and call.when == "call":
        for name, path in REPORT_LOGS.items():
            text = path.read_text(errors="replace") if path.exists() else "(no log)"
            report.sections.append((f"{name} log (tail)", text[-6000:]))
    return report
