"""Experiment tracking: tl's runs recorded where users compare runs (MLflow)."""
