"""An OpenFeature provider over the Flagstaff SDK client (``pip install flagstaff[openfeature]``).

```python
from openfeature import api
from flagstaff.openfeature import FlagstaffProvider
api.set_provider(FlagstaffProvider(base_url="http://127.0.0.1:8400", sdk_key="fss_..."))
api.get_client().get_boolean_value("new-checkout", False, EvaluationContext("user-1"))
```

Reasons and error codes are translated with the engine enums' ``.openfeature`` names. Provider
events: READY after ``initialize`` (emitted by the OpenFeature registry) and again when the
client recovers; CONFIGURATION_CHANGED with the changed keys; STALE when the cache is out of
contact for longer than the staleness limit; ERROR when the server refuses the SDK key.
Flagstaff numbers are one type: integer resolution accepts integral numbers only, float
resolution accepts any number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from openfeature.evaluation_context import EvaluationContext
from openfeature.event import ProviderEventDetails
from openfeature.exception import ErrorCode as OFErrorCode
from openfeature.exception import ProviderFatalError, ProviderNotReadyError
from openfeature.flag_evaluation import FlagResolutionDetails
from openfeature.provider import AbstractProvider, Metadata

from flagstaff.engine import EvaluationDetail, FlagType
from flagstaff.sdk import Client, ClientStatus

_BOOLEAN, _STRING, _NUMBER, _JSON = FlagType.BOOLEAN, FlagType.STRING, FlagType.NUMBER, FlagType.JSON
_EMPTY: Mapping[str, Any] = {}
_ERROR_CODES = {code.value: code for code in OFErrorCode}


class FlagstaffProvider(AbstractProvider):
    """Wraps an existing ``Client`` or creates one from ``base_url``/``sdk_key``/``**options``.

    A client passed in is not closed on shutdown; one created here is.
    """

    def __init__(
        self,
        client: Client | None = None,
        *,
        base_url: str | None = None,
        sdk_key: str | None = None,
        init_timeout: float = 5.0,
        **client_options: Any,
    ) -> None:
        super().__init__()
        if client is None and base_url is None and "offline_file" not in client_options:
            raise ValueError("FlagstaffProvider needs a client, a base_url or an offline_file")
        self._owns_client = client is None
        self._client = client or Client(base_url, sdk_key=sdk_key, **client_options)
        self._init_timeout = init_timeout
        self._unsubscribe: list[Callable[[], None]] = []
        self._initialized = False

    @property
    def client(self) -> Client:
        return self._client

    def get_metadata(self) -> Metadata:
        return Metadata(name="flagstaff")

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        self._unsubscribe = [
            self._client.on_change(self._on_change),
            self._client.on_status(self._on_status),
        ]
        if not self._client.wait_until_ready(self._init_timeout):
            if self._client.error is not None:
                raise ProviderFatalError(self._client.error)
            raise ProviderNotReadyError(
                f"no flag data within {self._init_timeout} s; evaluations return defaults"
            )
        self._initialized = True

    def shutdown(self) -> None:
        for remove in self._unsubscribe:
            remove()
        self._unsubscribe = []
        if self._owns_client:
            self._client.close()

    def _on_change(self, key: str) -> None:
        self.emit_provider_configuration_changed(ProviderEventDetails(flags_changed=[key]))

    def _on_status(self, status: ClientStatus, message: str | None) -> None:
        if status is ClientStatus.STALE:
            self.emit_provider_stale(ProviderEventDetails(message=message))
        elif status is ClientStatus.ERROR:
            self.emit_provider_error(
                ProviderEventDetails(message=message, error_code=OFErrorCode.PROVIDER_FATAL)
            )
        elif status is ClientStatus.READY and self._initialized:
            # The registry emits the first READY itself when initialize() returns.
            self.emit_provider_ready(ProviderEventDetails(message="flag data is fresh again"))

    # -- resolution --------------------------------------------------------------------------

    def _resolve(
        self, key: str, default: Any, context: EvaluationContext | None, kind: FlagType
    ) -> FlagResolutionDetails[Any]:
        return self._convert(self._client.detail(key, _context(context), default, expected_type=kind))

    def _convert(self, detail: EvaluationDetail) -> FlagResolutionDetails[Any]:
        # The client's detail already says STALE and PROVIDER_NOT_READY; both are OpenFeature
        # names, so the translation is by name only.
        code = detail.error_code
        if code is None:
            return FlagResolutionDetails(
                detail.value, None, None, detail.reason.openfeature, detail.variant
            )
        of_code = _ERROR_CODES.get(code.openfeature, OFErrorCode.GENERAL)
        return FlagResolutionDetails(
            detail.value, of_code, detail.error_message, "ERROR", detail.variant
        )

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, _BOOLEAN)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, _STRING)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        result = self._resolve(flag_key, default_value, evaluation_context, _NUMBER)
        value = result.value
        if result.error_code is None and not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                result.value = int(value)
            else:
                return _mismatch(default_value, f"{flag_key} is {value!r}, not an integer")
        return result

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        result = self._resolve(flag_key, default_value, evaluation_context, _NUMBER)
        if result.error_code is None and isinstance(result.value, int):
            result.value = float(result.value)
        return result

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[Any] | Mapping[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[Any] | Mapping[str, Any]]:
        result = self._resolve(flag_key, default_value, evaluation_context, _JSON)
        if result.error_code is None and not isinstance(result.value, dict | list):
            return _mismatch(default_value, f"{flag_key} holds a JSON scalar, not an object")
        return result


def _context(context: EvaluationContext | None) -> Mapping[str, Any]:
    if context is None:
        return _EMPTY
    if context.targeting_key is None:
        return context.attributes
    return {**context.attributes, "targeting_key": context.targeting_key}


def _mismatch(default: Any, message: str) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(default, OFErrorCode.TYPE_MISMATCH, message, "ERROR")
