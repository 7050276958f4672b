"""Adobe Analytics data feeds: `hit_data.tsv` (no header) with its `column_headers.tsv` beside it.

Mapping checked against Adobe's "Data column reference" and "Page event lookup"
(experienceleague.adobe.com/docs/analytics/export/analytics-data-feed/data-feed-contents/): post_ columns
hold the values after processing rules and VISTA (Adobe recommends them); a visitor is
`post_visid_high` + `post_visid_low`; a visit is a visitor's `visit_num` (with `visit_start_time_gmt`);
`hit_time_gmt` is epoch seconds; `post_page_event` is 0 for page views and 100/101/102 for custom, download
and exit links. Rows with `exclude_hit` other than 0 and rows with `hit_source` 5, 7, 8 or 9 (data-source
uploads and retired sources, not hits) are excluded, as Adobe's own metrics exclude them: they are
quarantined with that reason. `cust_visid` is the custom visitor id: the customer id. Adobe has no login
event; the login is a custom link named `login` (s.tl(..., 'o', 'login')). Site search and device type
are implementation-specific (an eVar, a lookup): map them with --map.
"""

from __future__ import annotations

from clickintent.ingest.presets.base import VARCHAR, Preset

_LINK = "lower(trim(page_event_var2)) = 'login'"
_COLUMNS = (
    "post_visid_high", "post_visid_low", "hit_time_gmt", "post_page_url", "page_url", "post_pagename",
    "post_page_event", "page_event_var2", "post_referrer", "cust_visid", "visit_num", "visit_start_time_gmt",
    "exclude_hit", "hit_source", "mobileappid",
)  # fmt: skip

ADOBE = Preset(
    name="adobe",
    title="Adobe Analytics data feed (hit_data.tsv + column_headers.tsv)",
    ts_unit="s",
    columns=dict.fromkeys(_COLUMNS, VARCHAR),
    required=("post_visid_high", "post_visid_low", "hit_time_gmt", "visit_num"),
    fields={
        "visitor_id": "post_visid_high || ':' || post_visid_low",
        "ts": "hit_time_gmt",
        # post_page_url is stripped on link-tracking hits: their page is page_url
        "url": "coalesce(post_page_url, page_url)",
        "page_title": "post_pagename",
        "event_type": f"CASE post_page_event WHEN '0' THEN 'page_view' WHEN '100' THEN CASE WHEN {_LINK} "
        "THEN 'login' ELSE 'click' END WHEN '101' THEN 'download' WHEN '102' THEN 'exit_link' "
        "ELSE 'page_event_' || post_page_event END",
        "referrer": "post_referrer",
        "platform": "CASE WHEN mobileappid IS NOT NULL THEN 'app' ELSE 'web' END",
        "customer_id": "cust_visid",
        "session_id": "post_visid_high || ':' || post_visid_low || '.' || visit_num || '.' || "
        "coalesce(visit_start_time_gmt, '')",
    },
    exclude="CASE WHEN coalesce(exclude_hit, '0') <> '0' THEN 'excluded hit (Adobe exclude_hit ' || exclude_hit "
    "|| ')' WHEN hit_source IN ('5', '7', '8', '9') THEN 'not a hit (Adobe hit_source ' || hit_source || ')' END",
)
