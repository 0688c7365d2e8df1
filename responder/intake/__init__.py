"""Turning webhook requests into alerts: authentication, decoding, normalisation."""
