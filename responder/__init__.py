"""responder: Datadog alert webhook and incident automation."""

__version__ = "0.1.0"
