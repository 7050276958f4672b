"""PostHog events as exported (JSON lines, CSV or Parquet with `event`, `distinct_id`, `timestamp` and
`properties`, an object or JSON text).

Mapping checked against PostHog's "Identifying users" (posthog.com/docs/product-analytics/identify) and
posthog-js (`src/posthog-core.ts`: `$session_id` and `title` on `$pageview`, `$is_identified`) and its
default properties (`$current_url`, `$referrer`, `$device_type`, `$lib`, `$device_id`). identify merges the
anonymous distinct id into the user's: the `$identify` event carries the new `distinct_id` and the old one
in `$anon_distinct_id`, and later events carry the user's id as `distinct_id`. So the visitor is
`$device_id`, which identify does not change (then `$anon_distinct_id`, then `distinct_id`), the customer
is the identified `distinct_id`, and `$identify` is the login.
"""

from __future__ import annotations

from clickintent.ingest.presets.base import JSON, VARCHAR, Preset, jpath

_MOBILE_LIBS = "('posthog-ios', 'posthog-android', 'posthog-react-native', 'posthog-flutter')"
_IDENTIFY = "event = '$identify'"

POSTHOG = Preset(
    name="posthog",
    title="PostHog events export",
    ts_unit="iso",
    columns={"event": VARCHAR, "distinct_id": VARCHAR, "timestamp": VARCHAR, "properties": JSON},
    required=("event", "distinct_id", "timestamp"),
    fields={
        "visitor_id": f"coalesce({jpath('properties', '$device_id')}, CASE WHEN {_IDENTIFY} THEN "
        f"{jpath('properties', '$anon_distinct_id')} END, distinct_id)",
        "ts": '"timestamp"',
        "url": f"coalesce({jpath('properties', '$current_url')}, CASE WHEN event = '$screen' THEN 'app://' || "
        f"{jpath('properties', '$screen_name')} WHEN {_IDENTIFY} THEN 'identify' END)",
        "page_title": jpath("properties", "title"),
        "event_type": "CASE event WHEN '$pageview' THEN 'page_view' WHEN '$screen' THEN 'page_view' "
        f"WHEN '$identify' THEN 'login' WHEN '$pageleave' THEN 'page_leave' WHEN '$autocapture' THEN "
        f"CASE {jpath('properties', '$event_type')} WHEN 'submit' THEN 'form_submit' WHEN 'change' THEN 'change' "
        "ELSE 'click' END ELSE event END",
        "referrer": f"nullif({jpath('properties', '$referrer')}, '$direct')",
        "device": jpath("properties", "$device_type"),
        "platform": f"CASE WHEN event = '$screen' OR {jpath('properties', '$lib')} IN {_MOBILE_LIBS} "
        "THEN 'app' ELSE 'web' END",
        "customer_id": f"CASE WHEN {_IDENTIFY} OR {jpath('properties', '$is_identified')} = 'true' "
        "THEN distinct_id END",
        "session_id": jpath("properties", "$session_id"),
    },
)
