"""The OFREP event stream's protocol parts (ADR-0008), for whoever serves it.

The bulk evaluation answer to an SDK key names the stream in ``eventStreams`` (:func:`descriptor`):
this path with a short-lived signed token (:mod:`.stream_tokens`), relative, so the provider
joins it to the origin of its own OFREP base URL.  A connection is a subscriber of the
environment's :class:`~flagstaff.realtime.ChangeFeed` on its audience's channel
(:func:`subscribe`), and hears the ``refetchEvaluation`` messages :mod:`.refetch` decides on
(:func:`publish`).  The server (``flagstaff.server.browser.eventstream``) and a relay
(``flagstaff.relay.pages``) differ only in how they check the key the token names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flagstaff.browser.refetch import CLIENT, SERVER, RefetchTracker
from flagstaff.browser.stream_tokens import TOKEN_PARAM
from flagstaff.realtime import Change, ChangeFeed
from flagstaff.realtime.sse import EventStreamResponse

EVENT_STREAM_PATH = "/ofrep/v1/event-stream"
TRANSPORT = "ofrep-sse"
CHANNELS = {CLIENT: "ofrep-client", SERVER: "ofrep-server"}
# OFREP's default: a hidden tab closes its stream after this long and re-fetches on return.
INACTIVITY_DELAY_SECONDS = 120


def descriptor(root_path: str, token: str) -> list[dict[str, Any]]:
    """The ``eventStreams`` of a bulk answer carrying ``token``."""
    return [{
        "type": "sse",
        "endpoint": {"requestUri": f"{root_path}{EVENT_STREAM_PATH}?{TOKEN_PARAM}={token}"},
        "inactivityDelaySec": INACTIVITY_DELAY_SECONDS,
    }]


async def publish(tracker: RefetchTracker, feed: ChangeFeed, page: Sequence[Change]) -> None:
    """Fold committed changes into ``tracker`` and offer the pages they concern their message."""
    for environment, audience, item in tracker.observe(page):
        await feed.offer(CHANNELS[audience], environment, item)


async def subscribe(
    tracker: RefetchTracker, feed: ChangeFeed, *, environment: str, client: bool,
    after_id: int | None, credential: str,
) -> EventStreamResponse:
    """The response of a new connection of ``environment``'s ``client``-side (or server-side)
    audience, resuming after ``after_id`` (``Last-Event-ID``)."""
    audience = CLIENT if client else SERVER
    await tracker.ensure(environment, lambda env: feed.source.snapshot(environment=env))
    subscriber = feed.subscribe(environment=environment, transport=TRANSPORT, keepalive=True,
                                channel=CHANNELS[audience], credential=credential)
    try:
        initial, position = await tracker.initial(
            environment, audience, after_id, lambda after: feed.backlog(after_id=after))
    except BaseException:
        feed.unsubscribe(subscriber)
        raise
    return EventStreamResponse(feed=feed, subscriber=subscriber, initial=initial,
                               sent_up_to=position)
