"""Requests an engine holds, read from its own vLLM ``/metrics`` page (pure, no I/O).

``vllm:num_requests_running`` + ``vllm:num_requests_waiting``, summed over every series (one per
data-parallel ``engine`` label). This is the engine's own truth about whether it is idle: the
operator's drain reads it before deleting an instance. Label values may contain spaces and
braces, so the value is the first field after the closing brace of the label set.
"""

from __future__ import annotations

IN_ENGINE = ("vllm:num_requests_running", "vllm:num_requests_waiting")


def parse_sample(line: str) -> tuple[str, float] | None:
    brace, space = line.find("{"), line.find(" ")
    if brace != -1 and (space == -1 or brace < space):
        name, rest = line[:brace], line[line.rfind("}") + 1 :]
    elif space != -1:
        name, rest = line[:space], line[space:]
    else:
        return None
    fields = rest.split()
    try:
        return name, float(fields[0])
    except (IndexError, ValueError):
        return None


def requests_in_engine(text: str) -> float | None:
    """Running + waiting requests on the page; None when neither series is on it (not a vLLM
    metrics page, so it says nothing about idleness)."""
    total, seen = 0.0, False
    for line in text.splitlines():
        if not line.startswith(IN_ENGINE):
            continue
        sample = parse_sample(line)
        if sample is not None and sample[0] in IN_ENGINE:
            total += sample[1]
            seen = True
    return total if seen else None
