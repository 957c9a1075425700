"""pluggy's markers for tl's hooks: ``hookspec`` for their specifications, ``hookimpl`` for plugins."""

import pluggy

PROJECT_NAME = "tl"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
