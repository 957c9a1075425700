"""Plugins built on tf.keras; TensorFlow is imported inside hook bodies only."""
