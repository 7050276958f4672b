"""The service's one settings object: every knob of `clickintent serve`, read from CLICKINTENT_* variables.

The CLI writes its options into the environment before uvicorn starts, so each worker process builds the
same `Settings` (`Settings()` reads the environment; tests pass values directly). String-length limits are
not here: they are ingest's (`clickintent.ingest.transform.MAX_CHARS`), so the service accepts exactly what
ingest accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clickintent.serve.schemas import MAX_BATCH, MAX_EVENTS
from clickintent.sessionize import SessionizeOptions

_SESSIONIZE = SessionizeOptions()
DEFAULT_READ_TIMEOUT = 10.0  # seconds (protocol.py and app.RequestGuard keep it)
DEFAULT_MAX_CONNECTIONS = 1000


def check_api_key(key: str | None) -> None:
    """Raise ValueError when a key is set but empty: a service that says "open to anyone" while it
    answers every request 401 (issue 17) helps no one. Unset means no key; empty is a mistake."""
    if key is not None and not key.strip():
        raise ValueError(
            "CLICKINTENT_API_KEY is set but empty: set it to a secret (e.g. `openssl rand -hex 24`), "
            "or unset it to serve without a key"
        )


class Settings(BaseSettings):
    """Configuration of one service process (see docs/SERVICE.md)."""

    model_config = SettingsConfigDict(env_prefix="CLICKINTENT_", extra="ignore")

    bundle: Path = Field(description="Model bundle directory (encoder + classifier), verified at load.")
    api_key: SecretStr | None = Field(
        None, description="When set, every route but /healthz and /readyz needs it; set but empty is refused."
    )
    engine: Literal["auto", "onnx", "torch"] = Field(
        "auto", description="Encoder runtime; auto = ONNX Runtime when installed (measured faster), else torch."
    )
    threads: int = Field(1, ge=1, le=64, description="Intra-op threads of the encoder runtime per process.")
    text_cache: Path | None = Field(None, description="Text-vector cache directory (default: the library's).")
    workers: int = Field(1, ge=1, le=64, description="Worker processes (set by the CLI; reload differs when > 1).")

    # request limits
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest request body; larger gets 413.")
    max_events: int = Field(MAX_EVENTS, ge=1, le=MAX_EVENTS, description="Most events per session (422 beyond).")
    max_batch: int = Field(64, ge=1, le=MAX_BATCH, description="Most sessions per /v1/score request (422 beyond).")
    top_events: int = Field(3, ge=0, le=64, description="Events returned as the ones that weighed most.")
    read_timeout_seconds: float = Field(
        DEFAULT_READ_TIMEOUT, gt=0, le=600,
        description="A request's headers, and then its whole body, must each arrive within this (408 / closed).",
    )  # fmt: skip
    max_connections: int = Field(
        DEFAULT_MAX_CONNECTIONS, ge=1, description="Open connections per process; more are closed on arrival."
    )

    # live sessions: the sessionizer's rule, and memory bounds
    gap_minutes: float = Field(_SESSIONIZE.gap_minutes, gt=0, description="Inactivity that ends a live session.")
    max_duration_hours: float = Field(_SESSIONIZE.max_duration_hours, gt=0, description="Longest live session.")
    live_max_sessions: int = Field(10_000, ge=1, description="Live sessions kept (least recently used go first).")
    live_max_bytes: int = Field(256 << 20, ge=1 << 20, description="Text bytes of live sessions kept (LRU beyond).")
    live_ttl_seconds: float = Field(1800.0, gt=0, description="Live sessions untouched this long are dropped.")

    # inference
    max_rows: int = Field(256, ge=1, description="Most sessions (occluded copies included) per encoder call.")

    @field_validator("api_key")
    @classmethod
    def _key_not_empty(cls, key: SecretStr | None) -> SecretStr | None:
        check_api_key(None if key is None else key.get_secret_value())
        return key
