"""Composition root: settings -> engine -> actions -> pipeline -> app. The only module that
imports integrations, and the one place that decides which stages run, in which order."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from pydantic import SecretStr
from starlette.types import ASGIApp

from integrations.datadog import datadog_actions, default_app_url
from integrations.pagerduty import TriggerAction, pagerduty_actions
from integrations.slack import CONVERSATION, slack_actions
from integrations.slack.requests import SlackRequests
from responder.actions import Registry
from responder.domain import Alert
from responder.metrics import Metrics
from responder.pipeline.answers import AnswerDesk, Silencer
from responder.pipeline.claim import Claimer
from responder.pipeline.contexts import AlertContexts
from responder.pipeline.correlate import CorrelateStage
from responder.pipeline.flapping import FlapStage
from responder.pipeline.grouping import GroupStage
from responder.pipeline.lifecycle import LifecycleStage
from responder.pipeline.match import MatchStage
from responder.pipeline.notices import NoticePlanner, NoticeRules
from responder.pipeline.partitions import Dealer
from responder.pipeline.plan import PlanStage
from responder.pipeline.policy import StreamPolicy
from responder.pipeline.process import EventProcessor
from responder.pipeline.reloader import PlaybookReloader
from responder.pipeline.runner import ActionRunner
from responder.pipeline.silence import SilenceStage
from responder.pipeline.silencer import SilenceDesk
from responder.pipeline.stages import Stage
from responder.pipeline.storm import StormEndStage, StormStage
from responder.pipeline.takeover import TakeOverStage
from responder.pipeline.timers import TimerSweep
from responder.pipeline.wakeup import Wakeup
from responder.pipeline.worker import Worker
from responder.playbooks.library import PlaybookLibrary
from responder.playbooks.maintenance import MaintenanceWindow
from responder.playbooks.schema import Playbook
from responder.redact import Redactor
from responder.settings import Settings, env_secret
from responder.store.db import create_engine, is_postgres
from responder.store.intake import IntakeWriter
from responder.web.app import AppParts, InboundParts, create_app
from responder.web.webhook import WebhookConfig


def build_registry(settings: Settings) -> Registry:
    return Registry(
        [
            *slack_actions(
                _secret(settings.slack_bot_token),
                settings.slack_api_url,
                channel_interval=settings.slack_channel_interval,
            ),
            *pagerduty_actions(
                routing_key=_secret(settings.pagerduty_routing_key),
                api_token=_secret(settings.pagerduty_api_token),
                events_url=settings.pagerduty_events_url,
                api_url=settings.pagerduty_api_url,
                secret=env_secret,
                from_email=settings.pagerduty_from_email,
            ),
            *datadog_actions(
                api_key=_secret(settings.dd_api_key),
                app_key=_secret(settings.dd_app_key),
                base_url=settings.datadog_url,
                app_url=settings.datadog_app_url or default_app_url(settings.dd_site),
            ),
        ]
    )


@dataclass(frozen=True, slots=True)
class IntegrationState:
    """One vendor as configured: what works, or which variables to set for it."""

    name: str
    configured: bool
    detail: str


def integration_states(settings: Settings) -> list[IntegrationState]:
    """Each integration, configured or skipped with the variables to set (first-run report)."""
    datadog = bool(_secret(settings.dd_api_key)) and bool(_secret(settings.dd_app_key))
    slack = bool(_secret(settings.slack_bot_token))
    paging = bool(_secret(settings.pagerduty_routing_key))
    notes = bool(_secret(settings.pagerduty_api_token)) and bool(settings.pagerduty_from_email)
    chat = bool(_secret(settings.slack_signing_secret))
    hooks = bool(_secret(settings.pagerduty_webhook_secret))
    return [
        IntegrationState(
            "Datadog",
            datadog,
            f"incidents, notebooks, workflows on {settings.datadog_url}"
            if datadog
            else "skipped: set DD_API_KEY and DD_APP_KEY (and DD_SITE outside datadoghq.com)",
        ),
        IntegrationState(
            "Slack",
            slack,
            "posts and thread replies" if slack else "skipped: set SLACK_BOT_TOKEN",
        ),
        IntegrationState(
            "PagerDuty",
            paging,
            "pages with the default routing key"
            if paging
            else "skipped: set PAGERDUTY_ROUTING_KEY (a step's env:NAME key is used if set)",
        ),
        IntegrationState(
            "PagerDuty notes",
            notes,
            "notes on PagerDuty incidents"
            if notes
            else "skipped: set PAGERDUTY_API_TOKEN and PAGERDUTY_FROM_EMAIL",
        ),
        IntegrationState(
            "Slack answers",
            chat,
            "buttons and /responder, signature checked"
            if chat
            else "skipped: set SLACK_SIGNING_SECRET to take the buttons and /responder",
        ),
        IntegrationState(
            "PagerDuty answers",
            hooks,
            "acknowledgements and resolutions from PagerDuty's webhooks"
            if hooks
            else "skipped: set PAGERDUTY_WEBHOOK_SECRET to take PagerDuty's webhooks",
        ),
    ]


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def playbook_secrets(playbooks: Sequence[Playbook]) -> list[str]:
    """The values behind every `env:NAME` a playbook step names (routing keys, ...)."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str) and value.startswith("env:"):
            secret = env_secret(value)
            if secret:
                found.append(secret)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    for playbook in playbooks:
        for step in playbook.actions:
            walk(step.params)
    return found


def build_redactor(settings: Settings, playbooks: Sequence[Playbook] = ()) -> Redactor:
    secrets = [
        secret.get_secret_value()
        for secret in (
            settings.api_token,
            settings.dd_api_key,
            settings.dd_app_key,
            settings.slack_bot_token,
            settings.slack_signing_secret,
            settings.pagerduty_routing_key,
            settings.pagerduty_api_token,
            settings.pagerduty_webhook_secret,
        )
        if secret is not None
    ]
    return Redactor([*secrets, *settings.webhook_tokens, *playbook_secrets(playbooks)])


def build_stages(
    registry: Registry,
    max_age: timedelta,
    claimer: Claimer | None = None,
    windows: Callable[[], Sequence[MaintenanceWindow]] = tuple,
) -> list[Stage]:
    """The event pipeline, in order. A new stage is a module and a line here."""
    stages: list[Stage] = [
        StormEndStage(max_age, CONVERSATION),  # first: a storm's end is no incident's news
        CorrelateStage(),
        FlapStage(),
        GroupStage(),
        LifecycleStage(),
        # After lifecycle (the incident exists to be audited and held), before match (which
        # then plans nothing); flap and group come earlier, as lifecycle needs them.
        SilenceStage(windows),
        MatchStage(),
        PlanStage(registry, max_age, CONVERSATION),
        StormStage(max_age, CONVERSATION, page=TriggerAction.name),
    ]
    if claimer is not None:
        stages.append(TakeOverStage(claimer))  # last: nothing after it may fail
    return stages


@dataclass
class Service:
    """Everything one process runs; `start`/`stop` bracket the web app's lifespan."""

    settings: Settings
    engine: sa.Engine
    registry: Registry
    redactor: Redactor
    metrics: Metrics
    playbooks: PlaybookLibrary  # the running set; `reloader` replaces it
    writer: IntakeWriter
    worker: Worker | None
    deal: Callable[[Alert], int]  # the sequencer partition of an event (`dealer`)
    reloader: PlaybookReloader
    insecure: bool = False
    worker_thread: bool = True  # False: the caller steps `worker` itself (tests, one-shot tools)
    # Overrides the SilenceDesk behind the Slack "silence" command and button (tests).
    silencer: Silencer | None = None
    watch_thread: bool = True  # False: the caller reloads playbooks itself (`reloader.poll`)
    _started: bool = field(default=False, repr=False)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.writer.start()
        if self.worker is not None and self.worker_thread:
            self.worker.start()
        if self.watch_thread:
            self.reloader.start()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.watch_thread:
            self.reloader.stop()
        self.writer.stop()
        if self.worker is not None and self.worker_thread:
            self.worker.stop()

    @property
    def app(self) -> ASGIApp:
        """The web app serving this service (webhook, API, health); its lifespan starts it."""
        settings = self.settings
        token = settings.api_token.get_secret_value() if settings.api_token else None
        webhook = WebhookConfig(
            tuple(settings.webhook_tokens), self.insecure, settings.max_body_bytes
        )
        silences = SilenceDesk(self.engine, self.redactor)
        parts = AppParts(
            webhook,
            self.writer,
            self.deal,
            self.metrics,
            self.engine,
            token,
            self.insecure,
            self.start,
            self.stop,
            self.desk,
            silences,
            InboundParts(
                redactor=self.redactor,
                pagerduty_secret=(_secret(settings.pagerduty_webhook_secret) or "").strip() or None,
                chat=SlackRequests(_secret(settings.slack_signing_secret)),
                silencer=self.silencer or silences,
            ),
            self.playbooks,
            redactor=self.redactor,
            trusted_user_header=settings.trusted_user_header,
        )
        return create_app(parts)

    @property
    def desk(self) -> AnswerDesk:
        """Where people's answers are stored (the API, the CLI, Slack, PagerDuty)."""
        wake = self.worker.wake if self.worker is not None else (lambda count: None)
        return AnswerDesk(self.engine, self.deal, wake)


def stream_policy(settings: Settings) -> StreamPolicy:
    return StreamPolicy(
        reminder_interval=settings.reminder_interval,
        stale_after=settings.stale_after,
        storm_rate=settings.storm_rate,
        storm_quiet=settings.storm_quiet,
    )


def build_worker(
    settings: Settings,
    engine: sa.Engine,
    registry: Registry,
    redactor: Redactor,
    metrics: Metrics,
    playbooks: PlaybookLibrary,
) -> Worker:
    max_age = timedelta(seconds=settings.run_max_age_seconds)
    recent = AlertContexts()
    wakeup = Wakeup()
    runner = ActionRunner(
        engine,
        registry,
        redactor,
        metrics,
        wakeup,
        threads=settings.worker_threads,
        lease=timedelta(seconds=settings.lease_seconds),
        recent=recent,
        rules=NoticeRules(CONVERSATION),
        retry_scale=settings.retry_scale,
    )
    processor = EventProcessor(
        engine,
        build_stages(registry, max_age, runner.claimer, playbooks.windows),
        playbooks.current,  # read once a batch: a reload takes effect at the next one
        redactor,
        recent=recent,
        policy=stream_policy(settings),
    )
    notices = NoticePlanner(engine, registry, redactor, max_age, CONVERSATION)
    return Worker(
        engine,
        processor,
        runner,
        metrics,
        wakeup,
        settings.poll_seconds,
        notices,
        TimerSweep(engine, dealer(engine, playbooks)),
    )


def dealer(
    engine: sa.Engine, playbooks: PlaybookLibrary | Sequence[Playbook]
) -> Callable[[Alert], int]:
    """How events are dealt into sequencer partitions: on PostgreSQL so that several
    workers share them; SQLite has one sequencer, which takes every event anyway.
    A service deals by its library's running set; a one-off command by the set it loaded."""
    if is_postgres(engine):
        if isinstance(playbooks, PlaybookLibrary):
            return Dealer(playbooks.current)
        fixed = playbooks
        return Dealer(lambda: fixed)
    return _one_partition


def _one_partition(alert: Alert) -> int:
    return 0


def build_service(
    settings: Settings, *, with_worker: bool = True, insecure: bool = False
) -> Service:
    """Wire a service; raises PlaybookError for bad playbooks, before anything starts."""
    registry = build_registry(settings)
    playbooks = PlaybookLibrary.load(settings.playbooks, registry.params_models())
    engine = create_engine(settings.database_url)
    redactor = build_redactor(settings, playbooks.current())
    metrics = Metrics()
    worker = (
        build_worker(settings, engine, registry, redactor, metrics, playbooks)
        if with_worker
        else None
    )
    writer = IntakeWriter(
        engine,
        on_stored=worker.wake if worker is not None else (lambda count: None),
        on_batch=metrics.intake_batch.observe,
    )
    return Service(
        settings,
        engine,
        registry,
        redactor,
        metrics,
        playbooks,
        writer,
        worker,
        dealer(engine, playbooks),
        build_reloader(engine, playbooks, redactor, metrics),
        insecure,
    )


def build_reloader(
    engine: sa.Engine, playbooks: PlaybookLibrary, redactor: Redactor, metrics: Metrics
) -> PlaybookReloader:
    """Reloads `playbooks` on request (SIGHUP) or file change; new `env:` keys join `redactor`."""
    return PlaybookReloader(playbooks, engine, redactor, metrics, playbook_secrets)
