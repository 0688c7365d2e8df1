"""Every secret setting is masked wherever responder writes text (logs, audit rows, errors):
a secret added to Settings without joining `build_redactor` fails here."""

from __future__ import annotations

from pydantic import SecretStr

from responder.main import build_redactor
from responder.settings import Settings


def secret_fields() -> dict[str, str]:
    """Each SecretStr setting: its field name and environment variable."""
    found: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        if "SecretStr" in str(info.annotation):
            alias = info.validation_alias
            assert isinstance(alias, str), name
            found[name] = alias
    return found


def test_every_secret_setting_is_redacted() -> None:
    fields = secret_fields()
    assert "PAGERDUTY_WEBHOOK_SECRET" in fields.values()
    assert "SLACK_SIGNING_SECRET" in fields.values()
    values = {env: f"secret-value-of-{env.lower()}-42" for env in fields.values()}
    settings = Settings(**values)  # type: ignore[arg-type]
    for name in fields:
        assert isinstance(getattr(settings, name), SecretStr)
    redactor = build_redactor(settings)
    for env, value in values.items():
        assert value not in redactor.redact_text(f"line with {value} in it"), env
