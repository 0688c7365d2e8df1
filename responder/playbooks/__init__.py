"""Playbooks: the YAML format, loading and validating it, matching alerts, rendering params."""

from responder.playbooks.loader import PlaybookError, load_playbooks
from responder.playbooks.matcher import explain, matches, select
from responder.playbooks.render import RenderError, escape_for, render_params
from responder.playbooks.schema import MatchSpec, Playbook, Step

__all__ = [
    "MatchSpec",
    "Playbook",
    "PlaybookError",
    "RenderError",
    "Step",
    "escape_for",
    "explain",
    "load_playbooks",
    "matches",
    "render_params",
    "select",
]
