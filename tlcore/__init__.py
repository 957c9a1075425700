"""tl core: the framework-agnostic orchestrator of a transfer-learning run.

Nothing in this package imports TensorFlow or the built-in ``plugins`` package:
every framework-specific step is a pluggy hook answered by a plugin.
"""

__version__ = "0.1.0"
