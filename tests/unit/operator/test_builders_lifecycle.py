"""Engine pods: the wait-until-idle preStop hook and a grace period that fits it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sagellm_core.api import ExecutionInstanceSpec
from sagellm_core.api import labels as L
from sagellm_operator.builders.lifecycle import PRESTOP_SCRIPT, grace_period, prestop_bound
from sagellm_operator.builders.lws import build_lws
from sagellm_operator.builders.pod import build_pod
from sagellm_operator.settings import OperatorSettings, PodDefaults

Obj = dict[str, Any]
INSTANCE: Obj = {
    "apiVersion": L.API_VERSION, "kind": L.INSTANCE_KIND,
    "metadata": {"name": "p-general-0-abc", "namespace": "ns", "uid": "u1",
                 "labels": {L.LABEL_SPEC_HASH: "abc", L.LABEL_POOL: "p"}},
    "spec": {"pool": "p", "model": {"name": "m", "source": "m", "parameters": 1},
             "engine": {"kind": "Simulator"}, "args": ["m", "--port", "8000"],
             "drainTimeoutSeconds": 90},
}  # fmt: skip


@pytest.mark.parametrize(("bound", "timeout", "hook", "grace"), [(5, 90, 95, 125), (0.5, 0, 1, 31)])
def test_grace_period_fits_the_hook_and_the_engine_exit(
    bound: float, timeout: int, hook: int, grace: int
) -> None:
    assert prestop_bound(bound, timeout) == hook
    assert grace_period(bound, timeout) == grace


def test_pod_gets_the_hook_sized_by_the_instance_drain_timeout() -> None:
    spec = ExecutionInstanceSpec.model_validate(INSTANCE["spec"])
    pod = build_pod(INSTANCE, spec, PodDefaults(discovery_bound_seconds=5, port=8000))
    container = pod["spec"]["containers"][0]
    assert container["lifecycle"]["preStop"]["exec"]["command"] == [
        "python3", "-c", PRESTOP_SCRIPT, "5", "90", "8000",
    ]  # fmt: skip
    assert pod["spec"]["terminationGracePeriodSeconds"] == 5 + 90 + 30
    assert {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}} in (
        container["env"]
    )


def test_headless_workers_get_no_hook() -> None:
    inst = copy.deepcopy(INSTANCE)
    inst["spec"]["nodes"] = 2
    inst["spec"]["args"] += ["--nnodes", "2", "--node-rank", "0", "--master-addr",
                             "$(LWS_LEADER_ADDRESS)"]  # fmt: skip
    inst["spec"]["workerArgs"] = ["m", "--node-rank", "$(LWS_WORKER_INDEX)", "--headless"]
    lws = build_lws(inst, ExecutionInstanceSpec.model_validate(inst["spec"]), PodDefaults())
    template = lws["spec"]["leaderWorkerTemplate"]
    assert "lifecycle" in template["leaderTemplate"]["spec"]["containers"][0]
    assert "lifecycle" not in template["workerTemplate"]["spec"]["containers"][0]


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"drain_poll_seconds": 0}, "drain poll interval"),
        ({"pods": PodDefaults(discovery_bound_seconds=-1)}, "discovery bound"),
        ({"drain_timeout_seconds": -1}, "drain timeout"),
    ],
)
def test_settings_refuse_bad_drain_timing(kwargs: Obj, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        OperatorSettings(**kwargs)
