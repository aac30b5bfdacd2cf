"""Process configuration, read from the environment (SPEC §2)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_URL = "https://slack.com/api/"
MIN_TOKEN = 16
"""The shortest WARROOM_ALERTMANAGER_TOKEN accepted: anything shorter could be guessed."""


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    """Everything the process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    slack_bot_token: SecretStr | None = Field(default=None, alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(default=None, alias="SLACK_APP_TOKEN")
    slack_signing_secret: SecretStr | None = Field(default=None, alias="SLACK_SIGNING_SECRET")
    slack_api_url: str = Field(default=DEFAULT_API_URL, alias="SLACK_API_URL")
    database_url: str = Field(default="sqlite+aiosqlite:///warroom.db", alias="WARROOM_DATABASE_URL")
    host: str = Field(default="0.0.0.0", alias="WARROOM_HOST")
    port: int = Field(default=3000, ge=1, le=65535, alias="WARROOM_PORT")
    alertmanager_token: SecretStr | None = Field(default=None, alias="WARROOM_ALERTMANAGER_TOKEN")
    prometheus_token: SecretStr | None = Field(default=None, alias="WARROOM_PROMETHEUS_TOKEN")
    """Bearer token sent to the plans' `integrations.prometheus.url` (SPEC §2)."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        default="INFO", alias="WARROOM_LOG_LEVEL"
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            return None
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("alertmanager_token")
    @classmethod
    def _alertmanager_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # unset or empty: the hook answers 404
        token = value.get_secret_value()
        if token != token.strip() or any(c.isspace() for c in token):
            raise ValueError(
                "has spaces or a line break in it: set it to the token alone, e.g. $(openssl rand -hex 32)"
            )
        if len(token) < MIN_TOKEN:
            raise ValueError(
                f"is {len(token)} characters long, too short to keep the hook closed: "
                f"use at least {MIN_TOKEN}, e.g. $(openssl rand -hex 32)"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must be sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB")
        return value

    @field_validator("prometheus_token")
    @classmethod
    def _prometheus_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        token = value.get_secret_value()
        if token != token.strip() or any(c in token for c in "\r\n"):
            raise ValueError("has spaces or a line break in it: set it to the token alone")
        return value

    def secrets(self) -> list[SecretStr]:
        """The values that must never be logged: the tokens and the signing secret that are set."""
        values = (
            self.slack_bot_token,
            self.slack_app_token,
            self.slack_signing_secret,
            self.alertmanager_token,
            self.prometheus_token,
        )
        return [value for value in values if value is not None]

    @property
    def socket_mode(self) -> bool:
        """Socket Mode is used whenever an app-level token is set."""
        return self.slack_app_token is not None

    def require_slack(self) -> None:
        """Check the settings `warroom run` needs; raise SettingsError naming the first missing one."""
        if self.slack_bot_token is None:
            raise SettingsError("SLACK_BOT_TOKEN is not set: export the bot token (xoxb-…) of your Slack app")
        if not self.socket_mode:
            secret = None if self.slack_signing_secret is None else self.slack_signing_secret.get_secret_value()
            if secret is None:
                raise SettingsError(
                    "SLACK_SIGNING_SECRET is not set: HTTP mode needs it "
                    "(or set SLACK_APP_TOKEN=xapp-… to use Socket Mode)"
                )
            if not secret.strip():
                raise SettingsError(
                    "SLACK_SIGNING_SECRET is blank: HTTP mode needs the Signing Secret from the Slack app's "
                    "Basic Information page (or set SLACK_APP_TOKEN=xapp-… to use Socket Mode)"
                )
            if secret != secret.strip():
                raise SettingsError(
                    "SLACK_SIGNING_SECRET has spaces or a line break around it: no request would verify; "
                    "set it to the Signing Secret alone"
                )


def load_settings() -> Settings:
    """Read settings from the environment; raise SettingsError with one line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "environment"
        message = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{name.upper()} is invalid: {message}") from None
