"""Datadog webhook deliveries for tests and the README: every transition of the four example
monitors, in our payload template and in Datadog's untouched default one."""

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "datadog"
