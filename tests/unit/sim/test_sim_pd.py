"""kv_transfer_params parsing and the held-KV store."""

from __future__ import annotations

from typing import Any

import pytest

from sagellm_sim.engine import SimRequest
from sagellm_sim.pd import HeldKV, KvParamsError, parse_kv_params, producer_params

GOOD = {"do_remote_prefill": True, "remote_engine_id": "e", "remote_request_id": "r",
        "remote_block_ids": [1, 2], "remote_host": "10.0.0.1", "remote_port": 8000}  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ([], "kv_transfer_params"),
        ({"do_remote_decode": "yes"}, "kv_transfer_params.do_remote_decode"),
        ({"do_remote_decode": True, "do_remote_prefill": True},
         "kv_transfer_params.do_remote_prefill"),
        ({**GOOD, "remote_block_ids": "1,2"}, "kv_transfer_params.remote_block_ids"),
        ({**GOOD, "remote_block_ids": [1, True]}, "kv_transfer_params.remote_block_ids"),
        ({**GOOD, "remote_port": "8000"}, "kv_transfer_params.remote_port"),
        ({**GOOD, "remote_host": None}, "kv_transfer_params.remote_host"),
        ({**GOOD, "remote_num_tokens": -1}, "kv_transfer_params.remote_num_tokens"),
        ({**GOOD, "tp_size": 1.5}, "kv_transfer_params.tp_size"),
    ],
)  # fmt: skip
def test_malformed_params_name_the_field(raw: Any, param: str) -> None:
    with pytest.raises(KvParamsError) as err:
        parse_kv_params(raw)
    assert err.value.param == param


def test_prefill_and_decode_legs() -> None:
    assert parse_kv_params(None) is None
    assert parse_kv_params({"do_remote_decode": False}) is None
    leg = parse_kv_params({"do_remote_decode": True, "remote_engine_id": None})
    assert leg is not None
    assert leg.remote_decode
    assert leg.remote_prefill is None
    decode = parse_kv_params({**GOOD, "remote_num_tokens": 40, "tp_size": 2})
    assert decode is not None
    assert decode.remote_prefill is not None
    assert decode.remote_prefill.num_tokens == 40
    assert decode.remote_prefill.block_ids == (1, 2)


def test_producer_params_round_trip_into_a_decode_leg() -> None:
    req = SimRequest("cmpl-x-1", [1] * 40, 1, 1, 0.0, blocks=[3, 4, 5])
    params = producer_params(req, "eng", "127.0.0.1", 9000, 1)
    parsed = parse_kv_params(params)
    assert parsed is not None
    assert parsed.remote_prefill is not None
    assert parsed.remote_prefill.request_id == "cmpl-x-1"
    assert parsed.remote_prefill.num_tokens == 40


def test_held_kv_expires_in_order() -> None:
    held = HeldKV()
    a, b = SimRequest("a", [1], 1, 1, 0.0), SimRequest("b", [1], 1, 1, 0.0)
    held.hold(a, 10.0)
    held.hold(b, 20.0)
    assert held.next_expiry() == 10.0
    assert held.expired(15.0) == [a]
    assert held.pop("b") is b
    assert held.pop("b") is None
    assert len(held) == 0
