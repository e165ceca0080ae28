"""Ports for the processes a test starts, collision-free across parallel test workers.

Asking the kernel for a free port (bind to 0) and handing it to a child process races: between
the test closing its probe socket and the child binding, another worker's probe, or any
outgoing connection, can be given the same ephemeral port. Instead every pytest-xdist worker
takes its own slice of ports below the kernel's ephemeral range, so neither the kernel nor a
sibling worker hands them out; the bind check skips ports that other programs on the machine
(another checkout's test run) happen to hold.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

_FIRST, _SLICE, _SLICES = 20000, 600, 20  # 20000..31999: below the ephemeral range (32768+)


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw3"; unset without xdist
    return int(worker[2:]) % _SLICES if worker[2:].isdigit() else 0


def _candidates() -> itertools.cycle[int]:
    start = _FIRST + _worker_index() * _SLICE
    ports = list(range(start, start + _SLICE))
    # Another checkout on this machine uses the same slices: start at a random point so two
    # runs rarely probe the same ports at the same moment.
    shift = random.randrange(_SLICE)
    return itertools.cycle(ports[shift:] + ports[:shift])


_NEXT = _candidates()


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on and no other test worker will hand out."""
    for _ in range(_SLICE):
        port = next(_NEXT)
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port in this worker's slice starting at {_FIRST}")


def loopback_net() -> int:
    """R for a kubelet's 127.R.0.0/16: each worker draws from its own R values, so pods of two
    workers never share an address (a random draw keeps two checkouts' runs apart too)."""
    per_worker = 254 // _SLICES
    return 1 + _worker_index() * per_worker + random.randrange(per_worker)
