"""A postmortem draft in Markdown from an incident's timeline: summary, who answered, how
long it took, what happened when, what each action did. Alert text is escaped throughout."""

from __future__ import annotations

import re

from responder.store.timeline import IncidentTimeline, duration, utc

# Characters that start emphasis, code, links, images, tables or inline HTML. Lines start
# with our own "- " or "|", so line-start markers (#, 1., >) in alert text are inert, and
# with brackets escaped, parentheses and ! can no longer make a link or an image.
_SPECIAL = re.compile(r"([\\`*_{}\[\]<>|~])")
_MENTION_BREAK = "@\u200b"  # so an `@team` in a title notifies nobody where this is pasted


def md(value: object) -> str:
    """One line of untrusted text, shown as the words it is."""
    one_line = " ".join(str(value).split())
    return _SPECIAL.sub(r"\\\1", one_line).replace("@", _MENTION_BREAK)


def postmortem_markdown(timeline: IncidentTimeline) -> str:
    incident = timeline.incident
    title = incident.get("current_title") or incident["title"]
    lines = [f"# Incident {incident['id']}: {md(title)}", "", "## Summary", ""]
    fields = [
        ("Status", incident["status"]),
        ("Priority", incident.get("priority") or "-"),
        ("Monitor", f"{incident.get('monitor_name') or '-'} ({incident.get('monitor_id')})"),
        ("Scope", incident.get("scope") or "-"),
        ("Service", incident.get("service") or "-"),
        ("Team", incident.get("team") or "-"),
        ("Environment", incident.get("env") or "-"),
        ("Opened", utc(incident["opened_at"])),
        ("Acknowledged", _answered(incident.get("acknowledged_at"), timeline.acknowledged_by)),
        ("Resolved", _answered(incident.get("resolved_at"), timeline.resolved_by)),
        ("Resolution", incident.get("resolution") or "-"),
        ("Time to acknowledge", duration(incident.get("time_to_ack_seconds"))),
        ("Time to resolve", duration(incident.get("time_to_resolve_seconds"))),
    ]
    lines += [f"- **{name}:** {md(value)}" for name, value in fields]
    lines += ["", "## Timeline (UTC)", ""]
    lines += [f"- {utc(moment.at)}: {md(moment.text)}" for moment in timeline.moments] or [
        "- nothing recorded"
    ]
    lines += ["", "## Actions", ""]
    if timeline.runs:
        lines += [
            "| Run | Action | Playbook | On | State | Attempts | Outcome |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {run.id} | {md(run.action)} | {md(run.playbook)} | {md(run.transition)} "
            f"| {run.state} | {run.attempts} | {md(run.outcome)} |"
            for run in timeline.runs
        ]
    else:
        lines.append("No action ran for this incident.")
    lines += ["", "## Follow-up", "", "- What went well:", "- What went wrong:", "- Actions:", ""]
    return "\n".join(lines)


def _answered(at: str | None, by: str | None) -> str:
    if at is None:
        return "-"
    return f"{utc(at)} by {by}" if by else utc(at)
