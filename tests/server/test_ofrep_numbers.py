"""Number flags through OpenFeature's integer/float split, as docs/sdk.md promises: integral
values travel as JSON integers and fractional ones (or ones written ``15.0``) as floats, on
SQLite and PostgreSQL, through ``openfeature-provider-ofrep`` and ``FlagstaffProvider``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.provider import FeatureProvider

from flagstaff.openfeature import FlagstaffProvider
from tests.builders import flag
from tests.server.conftest import ADMIN_SECRET, LiveServer, auth, create_token

pytestmark = pytest.mark.slow
CTX = EvaluationContext("user-1")


@pytest.fixture
def providers(client: TestClient, live_server: LiveServer) -> Iterator[dict[str, FeatureProvider]]:
    from openfeature.contrib.provider.ofrep import OFREPProvider

    for key, variants in (("limit-int", {"low": 4, "high": 15}),
                          ("limit-float", {"low": 4.0, "high": 15.0})):  # fmt: skip
        body = flag(key).number(variants, off="low").env("production", lambda e: e.on().fallthrough("high")).build()
        assert client.post("/flags", json=body, headers=auth(ADMIN_SECRET)).status_code == 201
    key = create_token(client, "sdk-server", environment="production")["secret"]
    ofrep = OFREPProvider(live_server.url, headers_factory=lambda: {"Authorization": f"Bearer {key}"})
    api.set_provider_and_wait(ofrep, "ofrep")
    api.set_provider_and_wait(FlagstaffProvider(base_url=live_server.url, sdk_key=key), "sdk")
    try:
        yield {"ofrep": ofrep}
    finally:
        api.shutdown()
        api.clear_providers()


def test_integral_values_are_integers_and_decimal_ones_floats(providers: dict[str, FeatureProvider]) -> None:
    remote, local = api.get_client("ofrep"), api.get_client("sdk")
    assert remote.get_integer_value("limit-int", 0, CTX) == 15
    refused = remote.get_float_details("limit-int", 0.5, CTX)
    assert (refused.value, refused.error_code) == (0.5, ErrorCode.TYPE_MISMATCH)
    assert remote.get_float_value("limit-float", 0.5, CTX) == 15.0
    assert remote.get_integer_details("limit-float", 0, CTX).error_code == ErrorCode.TYPE_MISMATCH
    # The in-process provider reads any number as a float.
    assert local.get_float_value("limit-int", 0.5, CTX) == 15
    assert local.get_integer_value("limit-int", 0, CTX) == 15
