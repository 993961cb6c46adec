"""One Settings object for the daemon.

Values come, highest priority first, from keyword arguments (the command line), environment variables
(``PERFPULSE_INTERVAL=2``, lists comma-separated: ``PERFPULSE_ALLOWED_HOSTS=mon.example.org,10.0.0.5``), an
optional TOML file (``--config FILE`` or ``PERFPULSE_CONFIG``), then the defaults below. Settings changed at
run time through the API (interval, collectors, perf events, process top-N, history retention) are saved in
the data directory and re-applied at the next start, except where the command line names that setting
explicitly.
"""

from __future__ import annotations

import contextvars
import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_TOML_FILE: contextvars.ContextVar[Path | None] = contextvars.ContextVar("perfpulse_toml", default=None)

DEFAULT_PORT = 8787

DAY = 86_400.0
#: Bounds of every history tier's retention, in seconds: an hour at least (the raw tier is written in
#: chunks of up to an hour), twenty years at most.
RETENTION_MIN = 3600.0
RETENTION_MAX = 20 * 365 * DAY


def default_data_dir() -> Path:
    """systemd's StateDirectory= when run as a service, else the XDG state directory of the user."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        # StateDirectory= may list several directories separated by ':'; the first is ours.
        return Path(state.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "perfpulse"


CommaList = Annotated[list[str], NoDecode]


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (``localhost`` counts; ``0.0.0.0`` does not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PERFPULSE_", extra="forbid", validate_default=True, validate_assignment=True
    )

    # -- sampling ------------------------------------------------------------------------------------------
    interval: float = Field(1.0, ge=0.1, le=60.0, description="seconds between two samples")
    collectors: CommaList | None = Field(None, description="collectors to enable; all when unset")
    perf_events: CommaList | None = Field(
        None, description="perf events to count; the built-in set when unset"
    )
    top_n: int = Field(10, ge=1, le=500, description="processes listed in the top-processes table")

    # -- network and access --------------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="address to bind; non-loopback needs TLS or --behind-proxy")
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    certfile: Path | None = None
    keyfile: Path | None = None
    behind_proxy: bool = False
    trusted_proxies: CommaList = Field(
        default_factory=list, description="proxy addresses trusted for X-Forwarded-*"
    )
    allowed_hosts: CommaList = Field(default_factory=list, description="extra Host header values accepted")
    allowed_origins: CommaList = Field(default_factory=list, description="extra browser origins accepted")
    max_connections: int = Field(1000, ge=1, le=100_000, description="WebSocket clients served at once")
    backfill_seconds: float = Field(300.0, ge=0, le=3600, description="live history kept for new clients")
    session_idle_seconds: float = Field(8 * 3600.0, ge=60, description="a session unused this long ends")
    session_lifetime_seconds: float = Field(
        7 * 86400.0, ge=60, description="a session ends this long after login"
    )
    login_failures_per_client: int = Field(
        10, ge=1, description="failed logins a client address may make per window"
    )
    login_failures_per_user: int = Field(10, ge=1, description="failed logins per username per window")
    login_window_seconds: float = Field(300.0, ge=1, description="the window of the two limits above")
    login_attempts_per_minute: int = Field(30, ge=1, description="login attempts (any outcome) per client")
    ws_ping_interval: float = Field(20.0, gt=0, description="seconds between WebSocket keepalive pings")
    ws_ping_timeout: float = Field(20.0, gt=0, description="a pong later than this closes the WebSocket")
    access_log: bool = True

    # -- storage -------------------------------------------------------------------------------------------
    data_dir: Path = Field(default_factory=default_data_dir)
    database: str | None = Field(
        None,
        description="history database: postgresql:// URL or SQLite path (default <data_dir>/perfpulse.db)",
    )
    retention_raw_seconds: float = Field(
        2 * DAY,
        ge=RETENTION_MIN,
        le=RETENTION_MAX,
        allow_inf_nan=False,
        description="how long raw samples (one per tick) are kept; at most the 1-minute tier's retention",
    )
    retention_minute_seconds: float = Field(
        90 * DAY,
        ge=RETENTION_MIN,
        le=RETENTION_MAX,
        allow_inf_nan=False,
        description="how long 1-minute rollups are kept; at most the 1-hour tier's retention",
    )
    retention_hour_seconds: float = Field(
        730 * DAY,
        ge=RETENTION_MIN,
        le=RETENTION_MAX,
        allow_inf_nan=False,
        description="how long 1-hour rollups are kept",
    )

    @field_validator(
        "collectors", "perf_events", "trusted_proxies", "allowed_hosts", "allowed_origins", mode="before"
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"trusted proxy {item!r} is not an IP address or network") from None
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together: give both or neither")
        return self

    @model_validator(mode="after")
    def _retention_order(self) -> Settings:
        problem = retention_order_problem(
            self.retention_raw_seconds, self.retention_minute_seconds, self.retention_hour_seconds
        )
        if problem is not None:
            raise ValueError(problem[1])
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = _TOML_FILE.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    # -- derived -------------------------------------------------------------------------------------------
    @property
    def tls(self) -> bool:
        return self.certfile is not None

    @property
    def db_path(self) -> Path:
        return self.data_dir / "perfpulse.db"

    def bind_problem(self) -> str | None:
        """Why this configuration must not start, or None. A dashboard reachable from the network without
        TLS would send passwords and session cookies in clear text."""
        if is_loopback(self.host):
            return None
        if self.tls:
            return None
        if self.behind_proxy and self.trusted_proxies:
            return None
        if self.behind_proxy:
            return (
                f"--behind-proxy on {self.host} needs --trusted-proxies (the proxy's address), so that "
                "forwarded client addresses are believed only from it"
            )
        return (
            f"refusing to listen on {self.host} without TLS: passwords and session cookies would cross the "
            "network in clear text. Give --certfile and --keyfile, or put perfpulse behind a TLS reverse "
            "proxy and pass --behind-proxy --trusted-proxies ADDR, or bind 127.0.0.1"
        )


def _span(seconds: float) -> str:
    text = f"{seconds:.0f} s" if seconds == int(seconds) else f"{seconds} s"
    return f"{text} = {seconds / DAY:.4g} days" if seconds >= DAY else text


def retention_order_problem(raw: float, minute: float, hour: float) -> tuple[str, str] | None:
    """``(field, message)`` when a finer tier would outlive a coarser one, else None. Queries older than a
    tier's horizon are answered from the next coarser tier, so that tier must still hold the time."""
    if raw > minute:
        return (
            "retention_raw_seconds",
            f"raw retention ({_span(raw)}) must not exceed the 1-minute tier's ({_span(minute)})",
        )
    if minute > hour:
        return (
            "retention_minute_seconds",
            f"1-minute retention ({_span(minute)}) must not exceed the 1-hour tier's ({_span(hour)})",
        )
    return None


class ConfigFileError(ValueError):
    """The TOML file cannot be read or does not parse."""


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Settings from ``overrides`` > environment > TOML file > defaults.

    ``config_file`` falls back to ``$PERFPULSE_CONFIG``. A missing or malformed file is an error (a typo in
    the path must not silently start with defaults). Raises pydantic's ValidationError on bad values.
    """
    path = config_file or os.environ.get("PERFPULSE_CONFIG") or None
    toml: Path | None = None
    if path is not None:
        toml = Path(path)
        try:
            with toml.open("rb") as fh:
                tomllib.load(fh)
        except OSError as exc:
            raise ConfigFileError(f"cannot read config file {toml}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigFileError(f"config file {toml} is not valid TOML: {exc}") from None
    token = _TOML_FILE.set(toml)
    try:
        clean = {k: v for k, v in overrides.items() if v is not None}
        return Settings(**clean)
    finally:
        _TOML_FILE.reset(token)
