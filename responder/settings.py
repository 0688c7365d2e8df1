"""Configuration from the environment: the only module that reads it (names are a contract)."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from responder.domain import parse_duration


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    database_url: str = Field(
        "sqlite:///./responder.db", validation_alias=AliasChoices("DATABASE_URL")
    )
    playbooks: Path = Field(Path("./playbooks"), validation_alias="RESPONDER_PLAYBOOKS")
    webhook_token: SecretStr | None = Field(None, validation_alias="RESPONDER_WEBHOOK_TOKEN")
    api_token: SecretStr | None = Field(None, validation_alias="RESPONDER_API_TOKEN")
    # The header a trusted proxy sets to the signed-in person's name: the web pages then
    # need no login. Only for a service that nothing but that proxy can reach.
    trusted_user_header: str | None = Field(None, validation_alias="RESPONDER_TRUSTED_USER_HEADER")

    dd_api_key: SecretStr | None = Field(None, validation_alias="DD_API_KEY")
    dd_app_key: SecretStr | None = Field(None, validation_alias="DD_APP_KEY")
    dd_site: str = Field("datadoghq.com", validation_alias="DD_SITE")
    datadog_api_url: str | None = Field(None, validation_alias="RESPONDER_DATADOG_API_URL")
    # Not in the contract table: the web UI that links point to, when DD_SITE's is not it.
    datadog_app_url: str | None = Field(None, validation_alias="RESPONDER_DATADOG_APP_URL")

    slack_bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_api_url: str = Field("https://slack.com/api/", validation_alias="RESPONDER_SLACK_API_URL")
    # Not in the contract table: seconds between messages to one channel (Slack allows
    # about one a second); 0 turns pacing off, for a proxy or fake with no such limit.
    slack_channel_interval: float = Field(1.1, validation_alias="RESPONDER_SLACK_CHANNEL_INTERVAL")

    pagerduty_routing_key: SecretStr | None = Field(None, validation_alias="PAGERDUTY_ROUTING_KEY")
    pagerduty_api_token: SecretStr | None = Field(None, validation_alias="PAGERDUTY_API_TOKEN")
    pagerduty_webhook_secret: SecretStr | None = Field(
        None, validation_alias="PAGERDUTY_WEBHOOK_SECRET"
    )
    # Not in the contract table: the REST API's required `From:` (a PagerDuty user's email),
    # needed only for `pagerduty.note`.
    pagerduty_from_email: str | None = Field(None, validation_alias="PAGERDUTY_FROM_EMAIL")
    pagerduty_events_url: str = Field(
        "https://events.pagerduty.com", validation_alias="RESPONDER_PAGERDUTY_EVENTS_URL"
    )
    pagerduty_api_url: str = Field(
        "https://api.pagerduty.com", validation_alias="RESPONDER_PAGERDUTY_API_URL"
    )

    # Tuning knobs beyond the contract table; the defaults suit a single small instance.
    max_body_bytes: int = Field(256 * 1024, validation_alias="RESPONDER_MAX_BODY_BYTES")
    run_max_age_seconds: float = Field(6 * 3600, validation_alias="RESPONDER_RUN_MAX_AGE")
    worker_threads: int = Field(8, validation_alias="RESPONDER_WORKER_THREADS")
    lease_seconds: float = Field(60.0, validation_alias="RESPONDER_LEASE_SECONDS")
    poll_seconds: float = Field(0.5, validation_alias="RESPONDER_POLL_SECONDS")
    # Multiplies every wait before a retry (backoff and a vendor's Retry-After): below 1 an
    # outage of hours passes in seconds, for fault drills and tests. Production keeps 1.
    retry_scale: float = Field(1.0, gt=0, validation_alias="RESPONDER_RETRY_SCALE")
    log_level: str = Field("info", validation_alias="RESPONDER_LOG_LEVEL")
    # Not in the contract table: "json" (one object a line, for machines) or "text".
    log_format: Literal["json", "text"] = Field("json", validation_alias="RESPONDER_LOG_FORMAT")

    # Alert streams: at most one reminder per interval (by Datadog's dates), and an incident
    # with no delivery for `stale_after` is resolved as stale ("off": never).
    reminder_interval: timedelta = Field(
        timedelta(hours=1), validation_alias="RESPONDER_REMINDER_INTERVAL"
    )
    stale_after: timedelta | None = Field(
        timedelta(hours=24), validation_alias="RESPONDER_STALE_AFTER"
    )
    # Not in the contract table: storm mode. Above `storm_rate` new incidents a minute in
    # one Slack channel (0: never), that channel gets one storm summary instead of new root
    # messages, until it has stayed at or below the rate for `storm_quiet`.
    storm_rate: int = Field(10, ge=0, validation_alias="RESPONDER_STORM_RATE")
    storm_quiet: timedelta = Field(timedelta(minutes=5), validation_alias="RESPONDER_STORM_QUIET")

    @field_validator("reminder_interval", mode="before")
    @classmethod
    def _interval(cls, value: object) -> object:
        return (
            parse_duration(value, "RESPONDER_REMINDER_INTERVAL")
            if isinstance(value, str)
            else value
        )

    @field_validator("stale_after", mode="before")
    @classmethod
    def _stale(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() == "off":
            return None
        return parse_duration(value, "RESPONDER_STALE_AFTER") if isinstance(value, str) else value

    @field_validator("storm_quiet", mode="before")
    @classmethod
    def _storm_quiet(cls, value: object) -> object:
        return parse_duration(value, "RESPONDER_STORM_QUIET") if isinstance(value, str) else value

    @property
    def webhook_tokens(self) -> list[str]:
        if self.webhook_token is None:
            return []
        raw = self.webhook_token.get_secret_value()
        return [token.strip() for token in raw.split(",") if token.strip()]

    @property
    def datadog_url(self) -> str:
        return self.datadog_api_url or f"https://api.{self.dd_site}"


def load_settings() -> Settings:
    return Settings()


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_secret(reference: str) -> str | None:
    """The value behind a playbook's `env:NAME` secret reference; None when unset or malformed.

    Playbooks name secrets, never hold them: a routing key written as `env:PD_PAYMENTS_KEY`
    is read here, at call time, so rotating it needs no playbook change.
    """
    name = reference.removeprefix("env:").strip()
    if not _ENV_NAME.match(name):
        return None
    value = os.environ.get(name, "").strip()
    return value or None
