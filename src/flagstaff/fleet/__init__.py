"""Proof that a change reached the fleet: what SDKs and relays report, and what it adds up to.

Every SDK instance and relay says which change-event id it has *applied* (docs/relay.md,
"The fleet view").  :mod:`~flagstaff.fleet.reports` is the wire format of those reports (a
``POST /fleet/reports`` body, or two headers on requests an instance makes anyway) and its
validation; :mod:`~flagstaff.fleet.convergence` turns a version histogram into the numbers the
API, ``/metrics`` and the console show ("97 % of 1,240 SDK instances have it").  Both are pure:
the server stores reports (``flagstaff.store.fleet``), a relay forwards them, the SDK writes them.
"""

from __future__ import annotations

from flagstaff.fleet.convergence import Convergence, VersionCount, converge, sentence
from flagstaff.fleet.reports import (
    INSTANCE_HEADER,
    KIND_HEADER,
    MAX_REPORTS,
    VERSION_HEADER,
    Report,
    parse_reports,
    report_from_headers,
    report_headers,
)

__all__ = [
    "INSTANCE_HEADER",
    "KIND_HEADER",
    "MAX_REPORTS",
    "VERSION_HEADER",
    "Convergence",
    "Report",
    "VersionCount",
    "converge",
    "parse_reports",
    "report_from_headers",
    "report_headers",
    "sentence",
]
