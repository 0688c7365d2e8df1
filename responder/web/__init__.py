"""HTTP: the Datadog webhook, the history API, health and metrics."""
