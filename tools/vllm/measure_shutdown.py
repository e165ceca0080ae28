"""Measure what an OpenAI-compatible engine server does on SIGTERM with streams in flight.

Works against real vLLM and ``sagellm sim`` alike (stdlib only, so it runs from either venv).
Starts the server command given after ``--``, waits for ``/health``, opens a kept-alive
connection, starts N streaming completions (``ignore_eos``, long ``max_tokens``), sends SIGTERM
once every stream has produced tokens, and then records:

* each stream's ending: ``[DONE]`` (with finish_reason), or cut (EOF/reset without ``[DONE]``),
  the number of SSE events before and after SIGTERM and the seconds from SIGTERM to its end;
* ``/health`` on new connections every 100 ms (status, or ``refused``);
* a completion request on a new connection and on the kept-alive connection after SIGTERM;
* the server's exit code and the seconds from SIGTERM to exit.

    python tools/vllm/measure_shutdown.py --streams 4 --max-tokens 400 -- \\
        python -m vllm.entrypoints.openai.api_server --model DIR --served-model-name tiny ...

The port is taken from the command's ``--port``. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import subprocess
import sys
import threading
import time
from typing import Any


def _port(cmd: list[str]) -> int:
    return int(cmd[cmd.index("--port") + 1])


def _health(port: int) -> str:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/health")
        status = conn.getresponse().status
        conn.close()
        return str(status)
    except ConnectionRefusedError:
        return "refused"
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__


def _body(model: str, max_tokens: int, stream: bool) -> str:
    return json.dumps({"model": model, "prompt": "Once upon a time", "max_tokens": max_tokens,
                       "ignore_eos": True, "stream": stream, "temperature": 0})  # fmt: skip


def _exchange(conn: http.client.HTTPConnection, method: str, path: str, body: str | None) -> str:
    """``<status> <start of the body>``, or what went wrong (``refused``, the exception)."""
    try:
        conn.request(method, path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return f"{resp.status} {resp.read()[:160].decode(errors='replace')}"
    except ConnectionRefusedError:
        return "refused"
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"


def _completion(port: int, model: str, max_tokens: int, stream: bool) -> http.client.HTTPResponse:
    """A completion on a new connection; the response, its body unread."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/completions", _body(model, max_tokens, stream),
                 {"Content-Type": "application/json"})  # fmt: skip
    return conn.getresponse()


def _request(conn: http.client.HTTPConnection, model: str, max_tokens: int = 4) -> str:
    return _exchange(conn, "POST", "/v1/completions", _body(model, max_tokens, False))


OTHER_PROBES = (
    ("GET", "/v1/models", None),
    ("GET", "/metrics", None),
    ("POST", "/tokenize", '{"model": "tiny", "prompt": "hi"}'),
    (
        "POST",
        "/v1/chat/completions",
        '{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}',
    ),
)


def _call(port: int, method: str, path: str, body: str | None) -> str:
    return _exchange(http.client.HTTPConnection("127.0.0.1", port, timeout=30), method, path, body)


def _load_lines(port: int) -> list[str] | str:
    """The engine's own load gauges, as a drain that reads /metrics would see them."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    names = ("vllm:num_requests_running", "vllm:num_requests_waiting")
    return [line for line in text.splitlines() if line.startswith(names)]


class Plain(threading.Thread):
    """One long non-streaming completion in flight at SIGTERM."""

    def __init__(self, port: int, model: str, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.port, self.model, self.max_tokens = port, model, max_tokens
        self.result: str | None = None
        self.ended_at: float | None = None

    def run(self) -> None:
        try:
            resp = _completion(self.port, self.model, self.max_tokens, stream=False)
            data = json.loads(resp.read())
            if "choices" in data:
                data["choices"][0]["text"] = f"<{len(data['choices'][0]['text'])} chars>"
            self.result = f"{resp.status} {json.dumps(data)}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self.result = f"{type(exc).__name__}: {exc}"
        finally:
            self.ended_at = time.monotonic()


class Stream(threading.Thread):
    def __init__(self, port: int, model: str, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.port, self.model, self.max_tokens = port, model, max_tokens
        self.events = 0
        self.events_at_term: int | None = None
        self.finish: str | None = None
        self.done = False
        self.error: str | None = None
        self.ended_at: float | None = None
        self.tail: list[str] = []

    def run(self) -> None:
        resp = None
        try:
            resp = _completion(self.port, self.model, self.max_tokens, stream=True)
            if resp.status != 200:
                self.error = f"HTTP {resp.status}"
                return
            for raw in resp:
                line = raw.strip()
                if line:
                    self.tail = [*self.tail[-2:], line.decode(errors="replace")[:300]]
                if not line.startswith(b"data: "):
                    continue
                if line == b"data: [DONE]":
                    self.done = True
                    continue
                self.events += 1
                choices = json.loads(line[6:]).get("choices") or [{}]
                self.finish = choices[0].get("finish_reason") or self.finish
        except (OSError, http.client.HTTPException) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ended_at = time.monotonic()
            if resp is not None:
                resp.close()


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, within: float) -> None:
    deadline = time.monotonic() + within
    while _health(port) != "200":
        if proc.poll() is not None:
            sys.exit(f"server exited during start-up with {proc.returncode}")
        if time.monotonic() > deadline:
            sys.exit(f"server not healthy within {within}s")
        time.sleep(0.5)


def measure(args: argparse.Namespace) -> dict[str, Any]:
    port = _port(args.cmd)
    log = open(args.log, "wb")  # noqa: SIM115
    proc = subprocess.Popen(args.cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_healthy(proc, port, args.start_timeout)
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        before = _request(kept, args.model)
        streams = [Stream(port, args.model, args.max_tokens) for _ in range(args.streams)]
        plain = Plain(port, args.model, args.max_tokens)
        for s in [*streams, plain]:
            s.start()
        while min(s.events for s in streams) < args.events_before and all(
            s.ended_at is None for s in streams
        ):
            time.sleep(0.05)
        t0 = time.monotonic()
        for s in streams:
            s.events_at_term = s.events
        proc.send_signal(signal.SIGTERM)
        report = _observe(args, proc, port, kept, before, streams, t0)
        plain.join(5)
        report["non_streaming_in_flight"] = plain.result
        report["non_streaming_ended_after_s"] = (
            None if plain.ended_at is None else round(plain.ended_at - t0, 2)
        )
        return report
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _observe(
    args: argparse.Namespace, proc: subprocess.Popen[bytes], port: int,
    kept: http.client.HTTPConnection, before: str, streams: list[Stream], t0: float,
) -> dict[str, Any]:  # fmt: skip
    health: list[tuple[float, str]] = []
    probes: dict[str, str] = {}
    time.sleep(args.probe_after)
    probes["kept_alive_completion"] = _request(kept, args.model)
    probes["new_connection_completion"] = _request(
        http.client.HTTPConnection("127.0.0.1", port, timeout=30), args.model
    )
    for method, path, body in OTHER_PROBES:
        probes[f"{method} {path}"] = _call(port, method, path, body)
    probes["metrics_load"] = _load_lines(port)
    while proc.poll() is None and time.monotonic() - t0 < args.max_wait:
        status = _health(port)
        if not health or health[-1][1] != status:
            health.append((round(time.monotonic() - t0, 2), status))
        time.sleep(0.1)
    exit_code = proc.poll()
    exit_after = round(time.monotonic() - t0, 2)
    for s in streams:
        s.join(5)
    return {
        "command": " ".join(args.cmd), "kept_alive_before_sigterm": before,
        "streams": [{
            "done": s.done, "finish_reason": s.finish, "error": s.error,
            "events_before_sigterm": s.events_at_term,
            "events_after_sigterm": s.events - (s.events_at_term or 0),
            "ended_after_s": None if s.ended_at is None else round(s.ended_at - t0, 2),
            "last_lines": s.tail,
        } for s in streams],
        "probes_after_s": args.probe_after, **probes,
        "health_transitions": health, "exit_code": exit_code, "exit_after_s": exit_after,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=400)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--events-before", type=int, default=5)
    parser.add_argument("--probe-after", type=float, default=0.5)
    parser.add_argument("--max-wait", type=float, default=120.0)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument("--log", default="/dev/null")
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    args.cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    print(json.dumps(measure(args), indent=1))


if __name__ == "__main__":
    main()
