"""When a chat stream's first event comes: with the first engine output, as in vLLM 0.32.

vLLM writes the ``delta.role`` chunk inside its loop over the engine's outputs, so a request
that waits for a slot sends nothing until it is scheduled and its prefill is done. Clients and
routers that time the first byte (TTFT, the router's first-byte timeout) depend on that. With
``--max-num-seqs 1`` a second stream must not start before the first one is over.
"""

from __future__ import annotations

import http.client
import json
import threading

import pytest
from sim_process import Launch

pytestmark = pytest.mark.timeout(300)


class ChatStream(threading.Thread):
    """One streaming chat request; records the order in which its events arrived."""

    def __init__(self, port: int, max_tokens: int, log: list[str], name: str) -> None:
        super().__init__(daemon=True)
        self.port, self.max_tokens, self.log, self.label = port, max_tokens, log, name
        self.first = threading.Event()

    def run(self) -> None:
        body = json.dumps(
            {
                "model": "tiny",
                "max_tokens": self.max_tokens,
                "ignore_eos": True,
                "stream": True,
                "messages": [{"role": "user", "content": "Hi"}],
            }
        )
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=240)
        conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        for raw in conn.getresponse():
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            if not self.first.is_set():
                self.log.append(f"{self.label} first")
                self.first.set()
            if line == "data: [DONE]":
                self.log.append(f"{self.label} done")


def test_a_queued_chat_stream_sends_nothing_before_it_is_scheduled(launch: Launch) -> None:
    _, port = launch("--max-num-seqs", "1")
    log: list[str] = []
    running = ChatStream(port, 600, log, "running")
    running.start()
    assert running.first.wait(120)
    queued = ChatStream(port, 4, log, "queued")
    queued.start()
    running.join(240)
    queued.join(240)
    assert log == ["running first", "running done", "queued first", "queued done"]
