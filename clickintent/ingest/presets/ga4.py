"""GA4's BigQuery export (`events_YYYYMMDD`, one row per event) as NDJSON or Parquet.

Mapping checked against Google's "[GA4] BigQuery Export schema" (support.google.com/analytics/answer/7029846)
and the recommended events reference (developers.google.com/analytics/devguides/collection/ga4/reference/events):
`event_params` is a repeated {key, value: {string_value, int_value, float_value, double_value}}; `bq extract`
to NDJSON writes INT64 values as strings (read either way here); `ga_session_id` is unique only within a
`user_pseudo_id` and sometimes arrives as a string; `platform` is WEB, IOS or ANDROID. The login is GA4's
recommended `login` event: `user_id` rides on every event after it, but a session is linked to a customer
by the login inside it (sessionize).
"""

from __future__ import annotations

from clickintent.ingest.presets.base import VARCHAR, Preset, Shape, keyed

PARAMS: Shape = [
    # int_value as text: `bq extract` writes INT64 as strings (a Parquet export's int64 is cast to text)
    {"key": VARCHAR, "value": {"string_value": VARCHAR, "int_value": VARCHAR, "float_value": "DOUBLE",
                               "double_value": "DOUBLE"}}
]  # fmt: skip
# An element's value as text, whichever of the four value fields holds it.
_VALUE = (
    "coalesce(p.value.string_value, p.value.int_value, CAST(p.value.double_value AS VARCHAR), "
    "CAST(p.value.float_value AS VARCHAR))"
)


def param(key: str) -> str:
    """SQL for the text of one key of `event_params`."""
    return keyed("event_params", key)


_APP = "upper(platform) IN ('IOS', 'ANDROID')"

GA4 = Preset(
    name="ga4",
    title="GA4 BigQuery export (events_*)",
    ts_unit="us",
    columns=dict.fromkeys(("event_timestamp", "event_name", "user_pseudo_id", "user_id", "platform"), VARCHAR)
    | {"device": {"category": VARCHAR}, "event_params": PARAMS},
    required=("event_timestamp", "event_name", "user_pseudo_id", "event_params"),
    fields={
        "visitor_id": "user_pseudo_id",
        "ts": "event_timestamp",
        "url": f"coalesce({param('page_location')}, CASE WHEN {_APP} THEN 'app://' || "
        f"coalesce({param('firebase_screen_class')}, {param('firebase_screen')}) END)",
        "page_title": f"coalesce({param('page_title')}, {param('firebase_screen')})",
        # GA4's enhanced measurement names its site search view_search_results; `search` is the recommended event
        "event_type": "CASE event_name WHEN 'view_search_results' THEN 'search' ELSE event_name END",
        "referrer": param("page_referrer"),
        "search_query": param("search_term"),
        "device": '"device".category',
        "platform": f"CASE WHEN {_APP} THEN 'app' ELSE 'web' END",
        "customer_id": "user_id",
        "session_id": f"user_pseudo_id || '.' || {param('ga_session_id')}",
    },
    keyed={"event_params": (PARAMS, "p.key", _VALUE), "user_properties": (PARAMS, "p.key", _VALUE)},
)
