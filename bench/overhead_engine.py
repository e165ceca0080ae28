"""The overhead benchmark's fake engine: a raw-asyncio HTTP/1.1 keep-alive server.

Every POST gets a small completion (a ``"stream": true`` body an SSE stream of 32 events, 5 ms
apart), ``GET /metrics`` a vLLM-shaped page of ~40 KB (so the router's scrape costs what it does
against a real engine), any other request 200 "ok". Fast enough that the router, not the engine,
is what ``bench/router_overhead.py`` measures.

Usage: python bench/overhead_engine.py --ports 9001,9002 (serves until killed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re

RESPONSE = json.dumps({
    "id": "cmpl-1", "object": "text_completion", "model": "bench",
    "choices": [{"index": 0, "text": "hello world", "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 16, "completion_tokens": 2, "total_tokens": 18},
}).encode()  # fmt: skip
STREAM_EVENTS, STREAM_GAP_S = 32, 0.005
STREAM_RE = re.compile(rb'"stream":\s*true')
STREAM_EVENT = (
    b'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"bench",'
    b'"choices":[{"index":0,"text":" word","logprobs":null,"finish_reason":null}]}\n\n'
)
LABELS = '{engine="0",model_name="bench"}'
HISTOGRAMS = ("time_to_first_token_seconds", "inter_token_latency_seconds",
              "e2e_request_latency_seconds", "request_queue_time_seconds",
              "request_prompt_tokens", "request_generation_tokens",
              "request_max_num_generation_tokens", "request_params_n", "request_params_max_tokens",
              "request_time_per_output_token_seconds", "request_inference_time_seconds",
              "request_prefill_time_seconds", "request_decode_time_seconds",
              "request_num_preemptions", "request_prefill_kv_computed_tokens")  # fmt: skip
BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
           10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip


def metrics_page() -> bytes:
    """A ``/metrics`` page shaped like vLLM's (~40 KB: the series the router reads among 15
    histograms and 35 other families), so the router's periodic scrape costs what it does
    against a real engine."""
    lines = []
    for i in range(35):
        name = f"vllm:gauge_{i}"
        lines += [f"# HELP {name} A vLLM gauge the router does not read.", f"# TYPE {name} gauge",
                  f"{name}{LABELS} {i}.0"]  # fmt: skip
    for name, value in (("num_requests_running", 3.0), ("num_requests_waiting", 0.0),
                        ("kv_cache_usage_perc", 0.25), ("prefix_cache_queries_total", 9000.0),
                        ("prefix_cache_hits_total", 6000.0)):  # fmt: skip
        lines.append(f"vllm:{name}{LABELS} {value}")
    for hist in HISTOGRAMS:
        name = f"vllm:{hist}"
        lines += [f"# HELP {name} Histogram of {hist}.", f"# TYPE {name} histogram"]
        lines += [f'{name}_bucket{{engine="0",le="{b}",model_name="bench"}} {k * 7}.0'
                  for k, b in enumerate((*BUCKETS, "+Inf"))]  # fmt: skip
        lines += [f"{name}_count{LABELS} 161.0", f"{name}_sum{LABELS} 1234.5",
                  f"{name}_created{LABELS} 1.79e+09"]  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


USAGE_EVENT = (
    b'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"bench","choices":[],'
    b'"usage":{"prompt_tokens":16,"completion_tokens":32,"total_tokens":48}}\n\n'
)


class EngineProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive server: every POST gets RESPONSE, ``GET /metrics`` a
    vLLM-shaped page, any other request 200 "ok"."""

    METRICS = metrics_page()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            marker = head.find(b"content-length:")
            if marker >= 0:
                length = int(head[marker + 15 :].split(b"\r\n", 1)[0])
            if len(self.buffer) < head_end + 4 + length:
                return
            body_in = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            if STREAM_RE.search(body_in):
                self.stream()
                continue
            body = RESPONSE if head.startswith(b"post") else b"ok\n"
            if head.startswith(b"get /metrics"):
                body = self.METRICS
            self.transport.write(  # type: ignore[attr-defined]
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )

    def stream(self) -> None:
        """An SSE completion: STREAM_EVENTS events, one per STREAM_GAP_S, each its own write."""
        write = self.transport.write  # type: ignore[attr-defined]
        write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        loop = asyncio.get_running_loop()
        for k in range(STREAM_EVENTS + 2):
            event = (
                STREAM_EVENT
                if k < STREAM_EVENTS
                else (USAGE_EVENT, b"data: [DONE]\n\n")[k - STREAM_EVENTS]
            )
            frame = f"{len(event):x}\r\n".encode() + event + b"\r\n"
            if k == STREAM_EVENTS + 1:
                frame += b"0\r\n\r\n"
            loop.call_later(k * STREAM_GAP_S, self._send, frame)

    def _send(self, frame: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(frame)  # type: ignore[attr-defined]


async def engine_main(ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    for port in ports:
        await loop.create_server(EngineProtocol, "127.0.0.1", port, backlog=1024)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", required=True, help="comma-separated ports on 127.0.0.1")
    args = parser.parse_args()
    asyncio.run(engine_main([int(p) for p in args.ports.split(",")]))


if __name__ == "__main__":
    main()
