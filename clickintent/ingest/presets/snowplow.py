"""Snowplow enriched events: the enriched TSV (no header, 131 columns) or an atomic.events export.

The enriched TSV's column order is the Snowplow analytics SDKs' (`ENRICHED_EVENT_FIELD_TYPES` in
snowplow/snowplow-python-analytics-sdk `event_transformer.py`, the same order in the Scala SDK); an
atomic.events export (CSV/TSV with a header, or Parquet) uses the same names. Field meanings from
"Snowplow atomic event properties" (docs.snowplow.io/docs/fundamentals/canonical-event): `event` is
page_view, page_ping, struct, unstruct, ...; `platform` is web, mob, pc, srv, app, tv, cnsl or iot;
timestamps are UTC text. Site search is the self-describing `site_search` event
(iglu:com.snowplowanalytics.snowplow/site_search/jsonschema/1-0-0, `terms` an array) inside
`unstruct_event` (warehouse loaders put it in its own column, read too). Snowplow has no login event:
`user_id` is set by the tracker's setUserId and rides on the events after it, so the login is an event
named `login` (a structured event with action `login`, or a self-describing event `login`).
"""

from __future__ import annotations

from clickintent.ingest.presets.base import JSON, VARCHAR, Preset, jpath

ENRICHED_FIELDS = tuple(
    """app_id platform etl_tstamp collector_tstamp dvce_created_tstamp event event_id txn_id name_tracker
    v_tracker v_collector v_etl user_id user_ipaddress user_fingerprint domain_userid domain_sessionidx
    network_userid geo_country geo_region geo_city geo_zipcode geo_latitude geo_longitude geo_region_name
    ip_isp ip_organization ip_domain ip_netspeed page_url page_title page_referrer page_urlscheme page_urlhost
    page_urlport page_urlpath page_urlquery page_urlfragment refr_urlscheme refr_urlhost refr_urlport
    refr_urlpath refr_urlquery refr_urlfragment refr_medium refr_source refr_term mkt_medium mkt_source
    mkt_term mkt_content mkt_campaign contexts se_category se_action se_label se_property se_value
    unstruct_event tr_orderid tr_affiliation tr_total tr_tax tr_shipping tr_city tr_state tr_country
    ti_orderid ti_sku ti_name ti_category ti_price ti_quantity pp_xoffset_min pp_xoffset_max pp_yoffset_min
    pp_yoffset_max useragent br_name br_family br_version br_type br_renderengine br_lang br_features_pdf
    br_features_flash br_features_java br_features_director br_features_quicktime br_features_realplayer
    br_features_windowsmedia br_features_gears br_features_silverlight br_cookies br_colordepth br_viewwidth
    br_viewheight os_name os_family os_manufacturer os_timezone dvce_type dvce_ismobile dvce_screenwidth
    dvce_screenheight doc_charset doc_width doc_height tr_currency tr_total_base tr_tax_base
    tr_shipping_base ti_currency ti_price_base base_currency geo_timezone mkt_clickid mkt_network etl_tags
    dvce_sent_tstamp refr_domain_userid refr_device_tstamp derived_contexts domain_sessionid derived_tstamp
    event_vendor event_name event_format event_version event_fingerprint true_tstamp""".split()  # noqa: SIM905 - SDK order, readable
)
assert len(ENRICHED_FIELDS) == 131

SEARCH_COLUMN = "unstruct_event_com_snowplowanalytics_snowplow_site_search_1"  # Snowflake/BigQuery loaders
_SCALARS = (
    "platform", "collector_tstamp", "derived_tstamp", "event", "event_name", "user_id", "domain_userid",
    "network_userid", "page_url", "page_title", "page_referrer", "se_action", "dvce_type", "dvce_ismobile",
    "domain_sessionid",
)  # fmt: skip
_NAME = "coalesce(event_name, event)"
_TERMS = (
    f"array_to_string(coalesce(json_extract_string(unstruct_event, '$.data.data.terms[*]'), "
    f"json_extract_string({SEARCH_COLUMN}, '$.terms[*]')), ' ')"
)

SNOWPLOW = Preset(
    name="snowplow",
    title="Snowplow enriched events (enriched TSV or atomic.events)",
    ts_unit="iso",
    columns=dict.fromkeys(_SCALARS, VARCHAR) | {"unstruct_event": JSON, SEARCH_COLUMN: JSON},
    required=("collector_tstamp", "event", "domain_userid"),
    fields={
        "visitor_id": "coalesce(domain_userid, network_userid)",
        "ts": "coalesce(derived_tstamp, collector_tstamp)",
        "url": f"coalesce(page_url, CASE WHEN {_NAME} = 'screen_view' THEN 'app://' || "
        f"{jpath('unstruct_event', 'data', 'data', 'name')} END)",
        "page_title": "page_title",
        "event_type": f"CASE WHEN event = 'struct' THEN coalesce(se_action, 'struct') ELSE "
        f"CASE {_NAME} WHEN 'site_search' THEN 'search' WHEN 'link_click' THEN 'click' "
        f"WHEN 'submit_form' THEN 'form_submit' ELSE {_NAME} END END",
        "referrer": "page_referrer",
        "search_query": f"CASE WHEN {_NAME} = 'site_search' THEN nullif({_TERMS}, '') END",
        "device": "coalesce(dvce_type, CASE WHEN dvce_ismobile IN ('1', 'true') THEN 'Mobile' "
        "WHEN dvce_ismobile IN ('0', 'false') THEN 'Computer' END)",
        "platform": "CASE WHEN platform IN ('mob', 'app') THEN 'app' ELSE 'web' END",
        "customer_id": "user_id",
        "session_id": "domain_sessionid",
    },
)
