"""Top-removal plugins: turn a base model into a feature extractor."""
