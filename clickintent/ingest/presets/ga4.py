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

from clickintent.ingest.presets.base import JSON, VARCHAR, Preset, Shape, jpath, literal

PARAMS: Shape = [
    {"key": VARCHAR, "value": {"string_value": VARCHAR, "int_value": "BIGINT", "float_value": "DOUBLE",
                               "double_value": "DOUBLE"}}
]  # fmt: skip
# One key's value as text, whichever of the four value fields holds it.
_KEYED = (
    "(SELECT coalesce(v.string_value, CAST(v.int_value AS VARCHAR), CAST(v.double_value AS VARCHAR), "
    "CAST(v.float_value AS VARCHAR)) FROM (SELECT list_filter({column}, p -> p.key = {{key}})[1].value AS v))"
)


def param(key: str) -> str:
    """SQL for the text of one key of `event_params`."""
    return _KEYED.format(column="event_params").format(key=literal(key))


_APP = "upper(platform) IN ('IOS', 'ANDROID')"

GA4 = Preset(
    name="ga4",
    title="GA4 BigQuery export (events_*)",
    ts_unit="us",
    columns=dict.fromkeys(("event_timestamp", "event_name", "user_pseudo_id", "user_id", "platform"), VARCHAR)
    | {"device": JSON, "event_params": PARAMS},
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
        "device": jpath("device", "category"),
        "platform": f"CASE WHEN {_APP} THEN 'app' ELSE 'web' END",
        "customer_id": "user_id",
        "session_id": f"user_pseudo_id || '.' || {param('ga_session_id')}",
    },
    keyed={
        "event_params": (PARAMS, _KEYED.format(column="event_params")),
        "user_properties": (PARAMS, _KEYED.format(column="user_properties")),
    },
)
