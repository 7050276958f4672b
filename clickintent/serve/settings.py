"""The service's one settings object: every knob of `clickintent serve`, read from CLICKINTENT_* variables.

The CLI writes its options into the environment before uvicorn starts, so each worker process builds the
same `Settings` (`Settings()` reads the environment; tests pass values directly). String-length limits are
not here: they are ingest's (`clickintent.ingest.transform.MAX_CHARS`), so the service accepts exactly what
ingest accepts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from clickintent.serve.schemas import MAX_BATCH, MAX_EVENTS
from clickintent.sessionize import SessionizeOptions

_SESSIONIZE = SessionizeOptions()


class Settings(BaseSettings):
    """Configuration of one service process (see docs/SERVICE.md)."""

    model_config = SettingsConfigDict(env_prefix="CLICKINTENT_", extra="ignore")

    bundle: Path = Field(description="Model bundle directory (encoder + classifier), verified at load.")
    api_key: SecretStr | None = Field(None, description="When set, every route but /healthz and /readyz needs it.")
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

    # live sessions: the sessionizer's rule, and memory bounds
    gap_minutes: float = Field(_SESSIONIZE.gap_minutes, gt=0, description="Inactivity that ends a live session.")
    max_duration_hours: float = Field(_SESSIONIZE.max_duration_hours, gt=0, description="Longest live session.")
    live_max_sessions: int = Field(10_000, ge=1, description="Live sessions kept (least recently used go first).")
    live_max_bytes: int = Field(256 << 20, ge=1 << 20, description="Text bytes of live sessions kept (LRU beyond).")
    live_ttl_seconds: float = Field(1800.0, gt=0, description="Live sessions untouched this long are dropped.")

    # inference
    max_rows: int = Field(256, ge=1, description="Most sessions (occluded copies included) per encoder call.")
