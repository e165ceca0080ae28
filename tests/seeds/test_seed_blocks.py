"""Every Python block of the seed documents, run verbatim against simulator engines.

The blocks are copied byte for byte in ``blocks/`` (see ``blocks/README.md`` and
``tools/seeds/extract_blocks.py``); ``harness.py`` runs each document as one session and
substitutes only foreign imports and engine ports. ``EXPECT`` says, for every block, what it
must print or which error (with what message) it must raise where the seed's code cannot work
as written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from router_procs import Proc, free_port, spawn_router, start_sims, wait_http

from tests.seeds.harness import BLOCKS, Outcome, Session, programs

SEED_MODELS = ("llama-3-70b", "llama-7b", "meta-llama/Llama-2-7b", "meta-llama/Llama-2-7b-chat-hf")
NO_PROMPT = (ValueError, r"has no prompt: add prompt='\.\.\.'")


@dataclass(frozen=True)
class Expect:
    prints: tuple[str, ...] = ()  # regexes, each must match a line of stdout, in order
    raises: tuple[type[BaseException], str] | None = None
    why: str = ""


def _metrics_lines() -> tuple[str, ...]:
    return (
        r"^Total requests: \d+$", r"^Completed: \d+$", r"^Failed: \d+$", r"^Active: \d+$",
        r"^Queued: \d+$", r"^Avg latency: [\d.]+ms$", r"^P95 latency: [\d.]+ms$",
        r"^P99 latency: [\d.]+ms$", r"^Tokens/sec: [\d.]+$", r"^Requests/sec: [\d.]+$",
        r"^SLO violations: \d+$", r"^SLO compliance: [\d.]+%$",
        r"^GPU utilization: [\d.]+%$", r"^GPU memory used: [\d.]+GB$",
    )  # fmt: skip


VLLM_ONLY = Expect(
    raises=(ModuleNotFoundError, "vllm"),
    why="vLLM's own AsyncLLMEngine API (a fragment: engine_args is never defined); our "
    "in-process executor runs it in `make test-vllm-inprocess`",
)
BASIC = Expect(
    raises=NO_PROMPT,
    why="the seed's request has no prompt: submit_request refuses it at once, saying what to add",
)
STATUS = Expect(prints=(r"^Running: False$", r"^Policy: cost_optimized$", r"^Pending: 0$",
                        r"^Running: 0$"))  # fmt: skip
PD_REGISTER = Expect()  # constructs and registers; nothing printed
SAME_AS_000 = {"01": VLLM_ONLY, "02": PD_REGISTER, "03": BASIC, "04": Expect(), "05": STATUS,
               "06": Expect(prints=_metrics_lines())}  # fmt: skip
PARALLELISM_NOT_IMPORTED = Expect(
    raises=(NameError, "ParallelismType"),
    why="001 never imports ParallelismType; with `from control_plane.types import "
    "ParallelismType` added the block runs (test_with_the_missing_import)",
)
BASIC_RUN = (r"^Request submitted: req-001$", r"^Request status: RequestStatus\.COMPLETED$",
             r"^Throughput: [\d.]+ req/s$", r"^Avg Latency: [\d.]+ ms$")  # fmt: skip

EXPECT: dict[str, Expect] = {
    **{f"s000_{k}": v for k, v in SAME_AS_000.items()},
    **{f"s002_{k}": v for k, v in SAME_AS_000.items()},
    "s001_01": Expect(), "s001_02": Expect(), "s001_03": Expect(),
    "s001_04+s001_05+s001_06+s001_07": Expect(prints=(r"^✓ Control Plane started$",),
                                              raises=NO_PROMPT),
    "s001_08": BASIC,
    "s001_09": Expect(), "s001_10": Expect(), "s001_11": Expect(), "s001_12": Expect(),
    "s001_13": Expect(prints=(r"^adaptive$",)),
    "s001_14": Expect(raises=NO_PROMPT, why="`request` is the cost-budget example's, no prompt"),
    "s001_15": Expect(
        raises=(KeyError, "no instance 'vllm-1' is registered; registered: none"),
        why="the session's cp is the fifo example's, which has no instances",
    ),
    "s001_16": Expect(),
    "s001_17": PARALLELISM_NOT_IMPORTED,
    "s001_18": Expect(),
    "s001_19": Expect(prints=(r": [\d.]+ req/s$", r": [\d.]+ms$", r"\(p95\): [\d.]+ms$",
                              r"\(p99\): [\d.]+ms$", r": [\d.]+%$")),
    "s001_20": Expect(prints=(r"^Available instances: 0$",)),
    "s001_21": Expect(
        prints=(r"^SLO violations: 0$",),
        raises=(TypeError, r"ExecutionInstance needs instance_id='a-name' \(got Ellipsis\)"),
        why="`ExecutionInstance(...)` is a placeholder; it fails saying what to fill in",
    ),
    "s001_22": Expect(),
    "s001_23": Expect(raises=(NameError, "'instance'"),
                      why="an API listing with placeholders (instance, instance_id, ...)"),
    "s001_24": PARALLELISM_NOT_IMPORTED,
    "s003_01": Expect(), "s003_02": PD_REGISTER, "s003_03": Expect(), "s003_04": Expect(),
    "s003_05": Expect(prints=(*_metrics_lines()[:2], r"^Active: \d+$",
                              *_metrics_lines()[5:13])),
    "s003_06": Expect(prints=BASIC_RUN),
    "s003_recovered": Expect(prints=(r"^Output: \{'request_id': '\w+', 'text': '.+",
                                     r"^.*: [\d.]+ req/s$", r"^.*: [\d.]+ ms$")),
    "s003_07": Expect(), "s003_08": Expect(), "s003_09": Expect(), "s003_10": Expect(),
    "s004_01": Expect(raises=(ModuleNotFoundError, "'sage'"),
                      why="the block's first lines are the deprecated sage.llm.sageLLM paths"),
    "s004_02": Expect(),
    "s004_03": Expect(raises=(NameError, "'ExecutionInstance'"),
                      why="004 is a damaged copy of 003 that lost the import (003's "
                      "s003_03 runs the same lines)"),
    "s004_04": Expect(raises=(NameError, "'ControlPlaneManager'"), why="as s004_03"),
    "s004_05": Expect(raises=(NameError, "'manager'"), why="as s004_03"),
    "s004_06": Expect(prints=BASIC_RUN),
    "s004_07": Expect(), "s004_08": Expect(), "s004_09": Expect(), "s004_10": Expect(),
}  # fmt: skip


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[int, int]]:
    """Three engines serving every model name the seeds use, standing in for ports 8000-8002."""
    names = [a for n in SEED_MODELS for a in ("--served-model-name", n)]
    sims = start_sims(3, SEED_MODELS[0], *names)
    yield {8000 + i: int(p.url.rsplit(":", 1)[1]) for i, p in enumerate(sims)}
    for p in sims:
        p.stop()


@pytest.fixture(scope="module")
def router(tmp_path_factory: Any) -> Iterator[str]:
    """A router with one chat model and one embedding model (seed 004's client example)."""
    chat, emb = start_sims(1, "tiny"), start_sims(1, "emb", "--runner", "pooling")
    port = free_port()
    pools = [{"name": m, "model": m, "task": t, "endpoints": [{"url": p[0].url, "instance": m}]}
             for m, t, p in (("tiny", "generate", chat), ("emb", "embed", emb))]  # fmt: skip
    config = tmp_path_factory.mktemp("router") / "router.yaml"
    doc = {"server": {"host": "127.0.0.1", "port": port},
           "discovery": {"type": "static", "pools": pools}}  # fmt: skip
    config.write_text(yaml.safe_dump(doc))
    proc = spawn_router(config)
    procs = [*chat, *emb, Proc(proc, f"http://127.0.0.1:{port}")]
    try:
        wait_http(procs[-1].url + "/ready", proc)
        yield procs[-1].url
    finally:
        for p in procs:
            p.stop()


@pytest.fixture
def seed_env(engines: dict[int, int], router: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where blocks without host/port look (ExecutionInstance, UnifiedInferenceClient.create)."""
    monkeypatch.setenv("SAGELLM_ENGINE_URL", f"http://127.0.0.1:{engines[8000]}")
    monkeypatch.setenv("SAGELLM_BASE_URL", router)
    monkeypatch.setenv("SAGELLM_MODEL", "tiny")
    monkeypatch.setenv("SAGELLM_EMBEDDING_MODEL", "emb")


def check(outcome: Outcome, expect: Expect) -> None:
    lines = outcome.stdout.splitlines()
    at = 0
    for pattern in expect.prints:
        found = next((i for i in range(at, len(lines)) if re.search(pattern, lines[i])), None)
        assert found is not None, f"{outcome.block}: no line matches {pattern!r}:\n{outcome.stdout}"
        at = found + 1
    if expect.raises is None:
        assert outcome.error is None, f"{outcome.block} raised {outcome.error!r}"
        return
    kind, message = expect.raises
    assert isinstance(outcome.error, kind), f"{outcome.block}: {outcome.error!r}, not {kind}"
    assert re.search(message, str(outcome.error)), f"{outcome.block}: {outcome.error}"


@pytest.mark.usefixtures("seed_env")
@pytest.mark.parametrize("doc", ["000", "001", "002", "003", "004"])
def test_seed_document_runs_as_written(doc: str, engines: dict[int, int]) -> None:
    session = Session(engines)
    try:
        for name, source in programs(doc):
            check(session.run(name, source), EXPECT[name])
    finally:
        session.close()


def test_every_block_has_an_expectation() -> None:
    names = {name for doc in ("000", "001", "002", "003", "004") for name, _ in programs(doc)}
    assert names == set(EXPECT)
    assert len(list(BLOCKS.glob("s*.py"))) == 57


def _with(name: str, old: str, new: str) -> str:
    source = (BLOCKS / f"{name}.py").read_text(encoding="utf-8")
    assert old in source
    return source.replace(old, new)


@pytest.mark.usefixtures("seed_env")
def test_the_quick_start_completes_once_the_prompt_is_added(engines: dict[int, int]) -> None:
    """001's full example with the one field it lacks: five requests complete within SLO."""
    source = _with("s001_08", "            max_tokens=100,\n",
                   '            max_tokens=100,\n            prompt="Hello",\n')  # fmt: skip
    session = Session(engines)
    try:
        outcome = session.run("s001_08 with prompt", source)
    finally:
        session.close()
    check(outcome, Expect(prints=(r"^Completed: 5$", r"^SLO Compliance: 100\.00%$")))


@pytest.mark.usefixtures("seed_env")
def test_with_the_missing_import(engines: dict[int, int]) -> None:
    """001's imports (its first block) plus the ParallelismType import it never shows."""
    session = Session(engines)
    try:
        check(session.run("s001_01", (BLOCKS / "s001_01.py").read_text(encoding="utf-8")), Expect())
        for name in ("s001_17", "s001_24"):
            source = (BLOCKS / f"{name}.py").read_text(encoding="utf-8")
            added = "from control_plane.types import ParallelismType\n" + source
            check(session.run(name, added), Expect())
    finally:
        session.close()


def test_blocks_are_the_seed_text() -> None:
    """When the seed documents are at hand (a developer checkout), the copies match them."""
    seeds = os.environ.get("SAGELLM_SEEDS_DIR", "../shared/seeds")
    if not os.path.isdir(seeds):
        pytest.skip(f"no seed documents at {seeds} (set SAGELLM_SEEDS_DIR)")
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "tools/seeds/extract_blocks.py", seeds, out], check=True,
                       capture_output=True)  # fmt: skip
        for block in BLOCKS.glob("s*.py"):
            assert block.read_bytes() == (BLOCKS.parent / out / block.name).read_bytes()


@pytest.mark.usefixtures("seed_env")
def test_the_sync_client_block_really_answers(engines: dict[int, int]) -> None:
    """004's `client.chat(...)` / `client.embed(...)` print nothing: look at what they returned."""
    session = Session(engines)
    try:
        check(session.run("s004_02", (BLOCKS / "s004_02.py").read_text(encoding="utf-8")), Expect())
        response, vectors = session.namespace["response"], session.namespace["vectors"]
        assert response.text
        assert response.usage.completion_tokens > 0
        assert len(vectors.vectors) == 2  # type: ignore[attr-defined]
        session.namespace["client"].close()  # type: ignore[attr-defined]
    finally:
        session.close()
