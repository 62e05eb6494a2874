"""One validated settings object per process, read from the environment.

Every tunable of the pipeline lives here with its default; no other module reads
``os.environ``. Outside development a missing or default JWT secret is refused.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "eduknit-development-secret-do-not-use-in-production"
CORS_ORIGIN = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


class Settings(BaseSettings):
    """Pipeline configuration; see the README table for each variable."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    env: Literal["development", "production"] = Field("development", alias="EDUKNIT_ENV")
    data_dir: Path = Field(Path("./data"), alias="EDUKNIT_DATA_DIR")
    clickhouse_url: str = Field("", alias="CLICKHOUSE_URL")
    kafka_bootstrap_servers: str = Field("", alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_port: int = Field(9092, alias="EDUKNIT_KAFKA_PORT", ge=0, le=65535)
    api_host: str = Field("127.0.0.1", alias="EDUKNIT_API_HOST")
    api_port: int = Field(8000, alias="EDUKNIT_API_PORT", ge=0, le=65535)
    partitions: int = Field(8, alias="EDUKNIT_PARTITIONS", ge=1, le=1024)
    jwt_secret: str = Field(DEV_JWT_SECRET, alias="EDUKNIT_JWT_SECRET")

    # Worker batching: a batch is flushed to ClickHouse when it holds this many
    # events or when this many seconds passed since its first event.
    batch_max_events: int = Field(5000, alias="EDUKNIT_BATCH_MAX_EVENTS", ge=1)
    batch_max_seconds: float = Field(0.1, alias="EDUKNIT_BATCH_MAX_SECONDS", gt=0)
    # Event ids of events that happened within this many days are kept in the
    # worker's state; older duplicates are recognised through ClickHouse.
    recent_ids_days: float = Field(7.0, alias="EDUKNIT_RECENT_IDS_DAYS", gt=0)
    # Events dated further than this in the future are rejected to the DLQ.
    max_future_seconds: float = Field(86400.0, alias="EDUKNIT_MAX_FUTURE_SECONDS", ge=0)
    max_event_bytes: int = Field(65536, alias="EDUKNIT_MAX_EVENT_BYTES", ge=1024)
    # Students whose state is kept in memory at most (least recently used go).
    # How long the broker may hold a consumer fetch that has no data yet (Faust's
    # own 1.5 s made every event wait; see streams.batch_consumer.shorten_fetch_wait).
    fetch_max_wait_ms: int = Field(100, alias="EDUKNIT_FETCH_MAX_WAIT_MS", ge=1, le=10_000)
    # Changed student states are snapshotted to ClickHouse this often (a restart
    # replays the counted events written after the last snapshot).
    snapshot_seconds: float = Field(10.0, alias="EDUKNIT_SNAPSHOT_SECONDS", gt=0)
    state_cache_students: int = Field(200_000, alias="EDUKNIT_STATE_CACHE_STUDENTS", ge=100)
    # The most recently active states kept as objects (~6 KiB each); older idle
    # ones are kept as their LZ4-compressed snapshot JSON (~0.65 KiB) until active again.
    # 0: all objects.
    hot_state_students: int = Field(10_000, alias="EDUKNIT_HOT_STATE_STUDENTS", ge=0)
    # The embedded engine's allocator keeps freed pages for seconds, and each batch's
    # inserts free hundreds of MiB a minute: they are handed back this often (0: never).
    engine_purge_seconds: float = Field(1.0, alias="EDUKNIT_ENGINE_PURGE_SECONDS", ge=0)

    # Invalid-ratio guard (streams/guard.py): over the last EDUKNIT_INVALID_WINDOW
    # messages, once at least EDUKNIT_INVALID_MIN_COUNT are in, the worker stops
    # (exit code 3, batch not acknowledged) when the share of dead letters is above
    # EDUKNIT_MAX_INVALID_RATIO. 1 turns the guard off.
    invalid_window: int = Field(1000, alias="EDUKNIT_INVALID_WINDOW", ge=1)
    invalid_min_count: int = Field(100, alias="EDUKNIT_INVALID_MIN_COUNT", ge=1)
    max_invalid_ratio: float = Field(0.5, alias="EDUKNIT_MAX_INVALID_RATIO", gt=0, le=1)
    # Fault injection for tests only (infra/faults.py): when 1, ClickHouse calls fail
    # while the file EDUKNIT_DATA_DIR/faults/clickhouse-down exists. Off in production.
    faults: bool = Field(False, alias="EDUKNIT_FAULTS")

    # API: how long POST progress/update waits for the pipeline to apply the event.
    apply_wait_seconds: float = Field(5.0, alias="EDUKNIT_APPLY_WAIT_SECONDS", gt=0)
    # API: dashboard payloads kept for the students who read them most recently (0: off),
    # until the change feed, polling ClickHouse this often, sees a newer row of theirs.
    dashboard_cache_students: int = Field(10_000, alias="EDUKNIT_DASHBOARD_CACHE_STUDENTS", ge=0)
    dashboard_feed_seconds: float = Field(0.1, alias="EDUKNIT_DASHBOARD_FEED_SECONDS", gt=0, le=1)
    # API: the live stream (GET /api/dashboard/stream) writes a ": keep-alive" comment
    # after this many seconds without an event (docs/live-dashboard.md: at least every 15 s).
    stream_keepalive_seconds: float = Field(
        15.0, alias="EDUKNIT_STREAM_KEEPALIVE_SECONDS", gt=0, le=15
    )
    # API leaderboards (api/leaderboard_cache.py): a kept ranking is rebuilt when this
    # old and its points changed; kept rankings hold at most this many ranked learners.
    leaderboard_refresh_seconds: float = Field(
        2.0, alias="EDUKNIT_LEADERBOARD_REFRESH_SECONDS", gt=0, le=60
    )
    leaderboard_cache_learners: int = Field(
        1_000_000, alias="EDUKNIT_LEADERBOARD_CACHE_LEARNERS", ge=1000
    )
    log_level: str = Field("info", alias="EDUKNIT_LOG_LEVEL")
    # Log lines as text, or as one JSON object per line (infra/logs.py).
    log_format: Literal["text", "json"] = Field("text", alias="EDUKNIT_LOG_FORMAT")
    # Worker: every this many seconds it compares this many random students with their
    # recomputation from learning_events (streams/sample_check.py; 0 seconds: off).
    consistency_seconds: float = Field(60.0, alias="EDUKNIT_CONSISTENCY_SECONDS", ge=0)
    consistency_sample: int = Field(100, alias="EDUKNIT_CONSISTENCY_SAMPLE", ge=1, le=10_000)

    # Trust at the edge (docs/api.md § What a student can and cannot claim; api/limits.py).
    # Request bodies: 413 above these sizes (batch routes: api.limits.BATCH_PATHS), 422
    # when JSON nests deeper; POST progress/update by a student: requests per minute.
    max_body_bytes: int = Field(65_536, alias="EDUKNIT_MAX_BODY_BYTES", ge=1024)
    max_batch_body_bytes: int = Field(4_194_304, alias="EDUKNIT_MAX_BATCH_BODY_BYTES", ge=1024)
    max_json_depth: int = Field(32, alias="EDUKNIT_MAX_JSON_DEPTH", ge=2, le=512)
    student_posts_per_minute: int = Field(60, alias="EDUKNIT_STUDENT_POSTS_PER_MINUTE", ge=1)
    # Browsers on these origins (comma-separated, e.g. https://app.example.org) get CORS
    # answers; none by default (the dashboard page is served by the API itself).
    cors_origins: str = Field("", alias="EDUKNIT_CORS_ORIGINS")
    # Tolerated clock difference when checking a token's exp and nbf (seconds).
    jwt_leeway_seconds: float = Field(0.0, alias="EDUKNIT_JWT_LEEWAY_SECONDS", ge=0, le=300)
    # A worker running alone (make worker, the compose service) serves /metrics and
    # /healthz here (port 0: none; with make run the API's /metrics shows the worker's).
    worker_metrics_port: int = Field(0, alias="EDUKNIT_WORKER_METRICS_PORT", ge=0, le=65535)
    worker_metrics_host: str = Field("127.0.0.1", alias="EDUKNIT_WORKER_METRICS_HOST")

    # API: HTTP Basic credentials of /xapi/statements (an LMS's LRS key and secret).
    # Basic is refused while either is empty; a service bearer token works regardless.
    xapi_key: str = Field("", alias="EDUKNIT_XAPI_KEY")
    xapi_secret: str = Field("", alias="EDUKNIT_XAPI_SECRET")

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.env == "production" and (
            self.jwt_secret == DEV_JWT_SECRET or len(self.jwt_secret) < 32
        ):
            raise ValueError(
                "EDUKNIT_JWT_SECRET must be set to a secret of at least 32 characters "
                "when EDUKNIT_ENV=production"
            )
        return self

    @model_validator(mode="after")
    def _check_guard_and_faults(self) -> Settings:
        if self.invalid_min_count > self.invalid_window:
            raise ValueError("EDUKNIT_INVALID_MIN_COUNT must not exceed EDUKNIT_INVALID_WINDOW")
        if self.faults and self.env == "production":
            raise ValueError("EDUKNIT_FAULTS (fault injection) is refused in production")
        return self

    @model_validator(mode="after")
    def _check_cors_origins(self) -> Settings:
        for origin in self.cors_origin_list:
            if origin != "*" and not CORS_ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"EDUKNIT_CORS_ORIGINS: {origin!r} is not an origin such as "
                    "https://app.example.org or http://127.0.0.1:5173 (scheme, host, port only)"
                )
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        """The origins of ``EDUKNIT_CORS_ORIGINS`` (empty: no CORS answers)."""
        return [part.strip() for part in self.cors_origins.split(",") if part.strip()]

    @property
    def require_token_exp(self) -> bool:
        """Tokens must carry ``exp`` in production."""
        return self.env == "production"

    @model_validator(mode="after")
    def _xapi_credentials_come_in_pairs(self) -> Settings:
        if bool(self.xapi_key) != bool(self.xapi_secret):
            raise ValueError(
                "EDUKNIT_XAPI_KEY and EDUKNIT_XAPI_SECRET are set together or not at all"
            )
        return self

    @property
    def data_path(self) -> Path:
        """The data directory as an absolute path."""
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_clickhouse_url(self) -> str:
        """``CLICKHOUSE_URL`` or the embedded engine under the data directory."""
        return self.clickhouse_url or f"chdb://{self.data_path / 'clickhouse'}"

    @property
    def embedded_clickhouse(self) -> bool:
        """True when ClickHouse runs inside this process (chdb)."""
        return self.resolved_clickhouse_url.startswith("chdb:")

    @property
    def embedded_broker(self) -> bool:
        """True when this process must start the embedded Tansu broker."""
        return not self.kafka_bootstrap_servers

    @property
    def bootstrap_servers(self) -> str:
        """The Kafka bootstrap servers the pipeline talks to."""
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()  # type: ignore[call-arg]
