"""Metric plugins: framework-neutral, they measure predictions (``tl_evaluate``), never a model."""
