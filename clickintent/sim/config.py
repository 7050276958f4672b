"""The simulator's world knobs and their JSON loader (`clickintent simulate --config FILE`).

A config file is one JSON object whose keys are the fields of `SimConfig`; any key left out keeps its
default, an unknown key is an error. Mixes are *multipliers* on the built-in weights (renormalised), so
`{"intent_mix": {"balance_transfer": 3}}` triples that intent's share and leaves the rest in proportion.
`extra_pages` adds pages to existing page groups, which is how a shifted world gets pages the default
catalogue never had. The size of the world (visitors, days), the seed and the signal are not here: they
are arguments of `simulate` and CLI options.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clickintent.sim.catalogue import Page, validate_pages
from clickintent.sim.intents import DEVICES, INTENT_NAMES, REFERRERS

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class SimConfig:
    name: str = "default"  # recorded in truth/manifest.json
    intent_mix: Mapping[str, float] = field(default_factory=dict)  # intent -> share multiplier
    device_mix: Mapping[str, float] = field(default_factory=dict)  # desktop/mobile/tablet -> multiplier
    referrer_mix: Mapping[str, float] = field(default_factory=dict)  # direct/organic/... -> multiplier
    extra_pages: tuple[Page, ...] = ()  # pages added to existing groups
    start: str = "2025-01-06"  # first day of the window (UTC)
    customer_share: float = 0.45  # share of visitors who are customers of the bank
    app_user_share: float = 0.75  # share of customers who use the mobile app
    web_sessions_per_day: float = 0.1  # mean web sessions per visitor per day (on top of the first)
    app_opens_per_day: float = 0.3  # mean app opens per app user per day
    max_cookies: int = 4  # cookies (browsers, devices) a person may have
    person_need: float = 0.7  # chance a session follows the person's standing need, else a fresh intent
    mixed_share: float = 0.12  # share of sessions that switch to a second intent
    noise_share: float = 0.06  # chance a page is replaced by an unrelated one (home, legal, help)
    bot_share: float = 0.03  # bot sessions per human web session
    login_success: float = 0.9  # chance a customer on the login page signs in
    pii_share: float = 0.01  # share of searches (and password-reset landings) carrying PII bait
    tile_odds_ratio: float = 100.0  # at --signal 1: day-0 odds ratio of clicking the researched product's tile
    apply_odds_ratio: float = 10000.0  # at --signal 1: odds ratio of applying for the researched product
    apply_base: float = 0.004  # share of web visits followed by an application when nothing pulls (signal 0)
    app_channel: float = 0.35  # share of an app user's applications made in the app
    offline_channel: float = 0.2  # share of applications made in a branch or by phone
    lookback_days: float = 28.0  # how far back a web session counts as "recent" for the app
    app_apply: float = 0.05  # chance a tile click leads to an in-app application
    bad_rows_per_reason: int = 3  # deliberate bad rows per reason (see truth/bad_rows.json)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-able data (what `load_config` reads back)."""
        out = dataclasses.asdict(self)
        out["intent_mix"] = dict(self.intent_mix)
        out["device_mix"] = dict(self.device_mix)
        out["referrer_mix"] = dict(self.referrer_mix)
        return out


def _check_mix(key: str, mix: Any, known: tuple[str, ...]) -> dict[str, float]:
    if not isinstance(mix, dict):
        raise ValueError(f"{key} must be an object of name -> multiplier")
    for name, value in mix.items():
        if name not in known:
            raise ValueError(f"{key}: unknown name {name!r}; known: {', '.join(known)}")
        if not isinstance(value, int | float) or value < 0:
            raise ValueError(f"{key}.{name} must be a number >= 0")
    return {k: float(v) for k, v in mix.items()}


def config_from_dict(data: Mapping[str, Any]) -> SimConfig:
    """Build and validate a SimConfig from parsed JSON."""
    fields = {f.name: f for f in dataclasses.fields(SimConfig)}
    renamed = {"signal_strength": "tile_odds_ratio", "recency_days": "the per-product half-lives (products.py)",
               "offline_apply": "apply_base and offline_channel"}  # fmt: skip
    old = sorted(set(data) & set(renamed))
    if old:
        raise ValueError("config keys that were replaced: " + ", ".join(f"{k} -> {renamed[k]}" for k in old))
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown config keys: {', '.join(unknown)}; known: {', '.join(fields)}")
    kw: dict[str, Any] = dict(data)
    kw["intent_mix"] = _check_mix("intent_mix", data.get("intent_mix", {}), INTENT_NAMES)
    kw["device_mix"] = _check_mix("device_mix", data.get("device_mix", {}), DEVICES)
    kw["referrer_mix"] = _check_mix("referrer_mix", data.get("referrer_mix", {}), REFERRERS)
    pages = data.get("extra_pages", [])
    if not isinstance(pages, list | tuple):
        raise ValueError("extra_pages must be a list of page objects")
    try:
        kw["extra_pages"] = tuple(p if isinstance(p, Page) else Page(**p) for p in pages)
    except TypeError as exc:
        page_fields = ", ".join(f.name for f in dataclasses.fields(Page))
        raise ValueError(f"extra_pages: each page takes the keys {page_fields} ({exc})") from exc
    cfg = SimConfig(**kw)
    for name in (
        "customer_share",
        "app_user_share",
        "person_need",
        "mixed_share",
        "noise_share",
        "login_success",
        "pii_share",
        "app_apply",
        "apply_base",
        "app_channel",
        "offline_channel",
    ):
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ValueError(f"{name} must be between 0 and 1")
    for name in (
        "web_sessions_per_day",
        "app_opens_per_day",
        "bot_share",
        "lookback_days",
    ):
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must be >= 0")
    for name in ("tile_odds_ratio", "apply_odds_ratio"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be >= 1 (1: web intent never pulls)")
    if cfg.app_channel + cfg.offline_channel > 1:
        raise ValueError("app_channel + offline_channel must be at most 1 (the rest applies on the web)")
    if not 1 <= cfg.max_cookies <= 8 or cfg.bad_rows_per_reason < 0:
        raise ValueError("max_cookies must be 1..8 and bad_rows_per_reason >= 0")
    return cfg


def load_config(path: str | Path | None) -> SimConfig:
    """Read a JSON config file; None gives the default world. A bare name finds a shipped config."""
    if path is None:
        return SimConfig()
    p = Path(path)
    if not p.exists() and (CONFIG_DIR / f"{path}.json").exists():
        p = CONFIG_DIR / f"{path}.json"
    data = json.loads(p.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a config file holds one JSON object")
    data.setdefault("name", p.stem)
    return config_from_dict(data)


def check_pages(cfg: SimConfig, default: tuple[Page, ...]) -> tuple[Page, ...]:
    """The default catalogue plus the config's extra pages, validated together."""
    pages = default + cfg.extra_pages
    validate_pages(pages)
    return pages
