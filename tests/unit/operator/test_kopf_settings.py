"""The operator's use of kopf's own tools: JSON logs, TLS verification, server-side selectors."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import kopf
import pytest

from sagellm_core.api import labels as L
from sagellm_operator.cli import configure_logging
from sagellm_operator.handlers import configure, connection_info
from sagellm_operator.k8s import connect
from sagellm_operator.settings import OperatorSettings


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_every_log_line_is_one_json_object(
    root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(verbose=False)
    log = logging.getLogger("sagellm_operator.test")
    log.info('pool "a" said: {"x": 1}\nsecond line')
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed \\ badly")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # each line parses on its own
    assert records[0]["message"] == 'pool "a" said: {"x": 1}\nsecond line'
    assert records[1]["message"].startswith("failed \\ badly")
    assert "ValueError: boom" in json.dumps(records[1])


def test_tls_is_verified_unless_a_flag_says_otherwise() -> None:
    default = connection_info(OperatorSettings(api_server="https://api.example:6443/"))
    assert default is not None
    assert (default.server, default.insecure) == ("https://api.example:6443", False)
    opted_out = OperatorSettings(api_server="https://x:6443", insecure_skip_tls_verify=True)
    assert connection_info(opted_out).insecure is True  # type: ignore[union-attr]
    assert connection_info(OperatorSettings()) is None  # in-cluster / kubeconfig


async def test_the_api_client_verifies_tls_by_default() -> None:
    kube = await connect(OperatorSettings(api_server="https://api.example:6443"))
    try:
        assert kube.api.configuration.verify_ssl is True
    finally:
        await kube.close()
    kube = await connect(OperatorSettings(api_server="https://x", insecure_skip_tls_verify=True))
    try:
        assert kube.api.configuration.verify_ssl is False
    finally:
        await kube.close()


def test_pods_are_selected_by_the_api_server() -> None:
    settings = kopf.OperatorSettings()
    configure(settings, OperatorSettings())
    pods = kopf.Resource("", "v1", "pods")
    selectors = set(settings.watching.label_selectors.collect(pods))
    assert selectors == {f"{L.LABEL_MANAGED_BY}={L.MANAGED_BY_VALUE}"}
