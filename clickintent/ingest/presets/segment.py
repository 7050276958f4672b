"""Segment and RudderStack events in their spec's JSON (one call per line, as the S3 destinations write them).

Mapping checked against the Segment Spec (segment.com/docs/connections/spec: common fields, page, track,
identify, screen; the e-commerce v2 spec's `Products Searched` with `query`; the B2B SaaS spec's
`Signed In`/`Signed Out`) and RudderStack's Event Spec (rudderstack.com/docs/event-spec/standard-events:
common fields with `channel` web|mobile|server, `context.sessionId` from its session tracking). `type` is
page, screen, track, identify, group or alias. An identify call links `anonymousId` to `userId`: it is the
login. Segment has no session id (sessions are cut by the inactivity gap); RudderStack's `context.sessionId`
is a number unique per device, so the session id is `anonymousId` + it.
"""

from __future__ import annotations

from clickintent.ingest.presets.base import JSON, VARCHAR, Preset, jpath

_PAGE = "lower(type) = 'page'"
_SCREEN = "lower(type) = 'screen'"
_IDENTIFY = "lower(type) = 'identify'"
_SCALARS = ("type", "event", "name", "anonymousId", "userId", "timestamp", "originalTimestamp", "channel")


def _spec(name: str, title: str, session_id: str) -> Preset:
    return Preset(
        name=name,
        title=title,
        ts_unit="iso",
        columns=dict.fromkeys(_SCALARS, VARCHAR) | {"context": JSON, "properties": JSON},
        required=("type", "timestamp"),
        fields={
            "visitor_id": 'coalesce("anonymousId", "userId")',
            "ts": 'coalesce("timestamp", "originalTimestamp")',
            # a server-side identify has no page: its opaque page id keeps the login from being quarantined
            "url": f"coalesce({jpath('context', 'page', 'url')}, {jpath('properties', 'url')}, "
            f"CASE WHEN {_SCREEN} THEN 'app://' || name WHEN {_IDENTIFY} THEN 'identify' END)",
            "page_title": f"coalesce({jpath('context', 'page', 'title')}, {jpath('properties', 'title')}, "
            f"CASE WHEN {_PAGE} OR {_SCREEN} THEN name END)",
            "event_type": f"CASE WHEN {_PAGE} OR {_SCREEN} THEN 'page_view' WHEN {_IDENTIFY} THEN 'login' "
            "WHEN lower(type) = 'track' THEN CASE event WHEN 'Products Searched' THEN 'search' "
            "WHEN 'Signed In' THEN 'login' WHEN 'Signed Out' THEN 'logout' ELSE event END ELSE lower(type) END",
            "referrer": f"coalesce({jpath('context', 'page', 'referrer')}, {jpath('properties', 'referrer')})",
            "search_query": f"CASE WHEN event = 'Products Searched' THEN {jpath('properties', 'query')} END",
            "device": jpath("context", "device", "type"),
            "platform": f"CASE WHEN {_SCREEN} OR lower(channel) = 'mobile' OR "
            f"lower({jpath('context', 'device', 'type')}) IN ('ios', 'android') THEN 'app' ELSE 'web' END",
            "customer_id": '"userId"',
            "session_id": session_id,
        },
    )


SEGMENT = _spec("segment", "Segment events (Segment Spec JSON)", "CAST(NULL AS VARCHAR)")
RUDDERSTACK = _spec(
    "rudderstack",
    "RudderStack events (RudderStack Event Spec JSON)",
    f"\"anonymousId\" || '.' || {jpath('context', 'sessionId')}",
)
