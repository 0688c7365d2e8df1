"""The pipeline: stored events through named stages, then action runs through the runner."""
