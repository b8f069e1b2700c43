"""The OpenFeature provider, exercised through ``openfeature.api`` as an application would."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.provider import ProviderStatus

from flagstaff.openfeature import FlagstaffProvider
from tests.sdk.conftest import FAST, eventually
from tests.sdk.fakeserver import KEY, FakeServer, bool_flag, string_flag


def _flag(key: str, type_: str, variants: dict[str, object], serve: str) -> dict[str, object]:
    flag = string_flag(key, "x")
    flag.update(type=type_, variants=variants, off_variant=serve, fallthrough={"variant": serve})
    return flag


@pytest.fixture
def events() -> Iterator[list[tuple[ProviderEvent, EventDetails]]]:
    seen: list[tuple[ProviderEvent, EventDetails]] = []
    lock = threading.Lock()
    handlers = {}
    for event in ProviderEvent:
        def handler(details: EventDetails, event: ProviderEvent = event) -> None:
            with lock:
                seen.append((event, details))
        handlers[event] = handler
        api.add_handler(event, handler)
    yield seen
    for event, handler in handlers.items():
        api.remove_handler(event, handler)
    api.clear_providers()


def test_resolution_details_through_the_openfeature_api(
    server: FakeServer, events: list[tuple[ProviderEvent, EventDetails]]
) -> None:
    server.set_flag(string_flag("model", "openai"))
    server.set_flag(_flag("limit", "number", {"ten": 10, "half": 0.5}, "ten"))
    server.set_flag(_flag("ratio", "number", {"half": 0.5}, "half"))
    server.set_flag(_flag("cfg", "json", {"a": {"x": 1}, "s": "scalar"}, "a"))
    target = bool_flag("vip")
    target["targets"] = [{"variant": "false", "values": ["user-9"]}]
    server.set_flag(target)
    api.set_provider_and_wait(FlagstaffProvider(base_url=server.url, sdk_key=KEY, options=FAST))
    client = api.get_client()
    ctx = EvaluationContext("user-1", {"country": "DE"})

    detail = client.get_boolean_details("new-checkout", False, ctx)
    assert (detail.value, detail.variant, detail.reason, detail.error_code) == (True, "true", "DEFAULT", None)
    vip = client.get_boolean_details("vip", True, EvaluationContext("user-9"))
    assert (vip.value, vip.reason) == (False, "TARGETING_MATCH")
    assert client.get_string_value("model", "anthropic", ctx) == "openai"
    assert client.get_integer_value("limit", 1, ctx) == 10
    assert client.get_float_value("limit", 1.0, ctx) == 10.0
    assert client.get_float_value("ratio", 1.0, ctx) == 0.5
    bad_int = client.get_integer_details("ratio", 1, ctx)
    assert (bad_int.value, bad_int.error_code) == (1, ErrorCode.TYPE_MISMATCH)
    assert client.get_object_value("cfg", {}, ctx) == {"x": 1}
    mismatch = client.get_string_details("new-checkout", "d", ctx)
    assert (mismatch.value, mismatch.error_code, mismatch.reason) == ("d", ErrorCode.TYPE_MISMATCH, "ERROR")
    missing = client.get_boolean_details("nope", True, ctx)
    assert (missing.value, missing.error_code) == (True, ErrorCode.FLAG_NOT_FOUND)
    assert api.get_provider_metadata().name == "flagstaff"

    server.set_flag(bool_flag("new-checkout", False, version=2))
    assert eventually(lambda: any(
        e is ProviderEvent.PROVIDER_CONFIGURATION_CHANGED and d.flags_changed == ["new-checkout"]
        for e, d in events))
    assert client.get_boolean_value("new-checkout", True, ctx) is False


def test_stale_and_recovery_events(
    server: FakeServer, events: list[tuple[ProviderEvent, EventDetails]]
) -> None:
    options = dataclasses.replace(FAST, stale_after=0.3, poll_after=0.05, poll_interval=0.05)
    provider = FlagstaffProvider(base_url=server.url, sdk_key=KEY, options=options)
    api.set_provider(provider)
    assert eventually(lambda: api.get_client().get_provider_status() is ProviderStatus.READY)
    # Ready comes from the first fetch; the stream may still be connecting.  A stream that
    # connects after the drop below would stay open and keep the provider fresh.
    assert eventually(lambda: server.open_streams == 1)
    server.refuse["/stream"] = (503, {})
    server.refuse["/sdk/flags"] = (503, {})
    server.drop_streams()
    assert eventually(lambda: any(e is ProviderEvent.PROVIDER_STALE for e, _ in events))
    detail = api.get_client().get_boolean_details("new-checkout", False)
    assert (detail.value, detail.reason) == (True, "STALE")
    server.refuse.clear()
    def ready_after_stale() -> bool:
        kinds = [e for e, _ in events]
        return ProviderEvent.PROVIDER_READY in kinds[kinds.index(ProviderEvent.PROVIDER_STALE):]

    assert eventually(ready_after_stale)
    assert api.get_client().get_provider_status() is ProviderStatus.READY
    assert api.get_client().get_boolean_details("new-checkout", False).reason == "DEFAULT"


def test_refused_key_is_a_provider_error(
    server: FakeServer, events: list[tuple[ProviderEvent, EventDetails]]
) -> None:
    api.set_provider(FlagstaffProvider(base_url=server.url, sdk_key="fss_bad", options=FAST))
    assert eventually(lambda: any(e is ProviderEvent.PROVIDER_ERROR for e, _ in events))
    detail = api.get_client().get_boolean_details("new-checkout", False)
    assert detail.value is False
    assert detail.error_code in (ErrorCode.PROVIDER_NOT_READY, ErrorCode.PROVIDER_FATAL)


def test_offline_provider(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "f.yaml"
    path.write_text("flags:\n  - key: k\n    type: boolean\n    environments:\n"
                    "      production: {enabled: true, fallthrough: {variant: 'true'}}\n")
    api.set_provider_and_wait(FlagstaffProvider(offline_file=path))
    try:
        assert api.get_client().get_boolean_value("k", False) is True
    finally:
        api.clear_providers()
