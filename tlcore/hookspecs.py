"""The hooks a ``tl`` plugin can implement.

Hooks are called with keyword arguments; an implementation may accept any subset
of them, so new arguments can be added without breaking existing plugins.

*Answer* hooks (``firstresult``) stop at the first non-None result. Plugins are
asked in pluggy's order: the last registered first, shifted by ``tryfirst`` and
``trylast``. Built-in implementations are ``trylast``, so an installed plugin
answers before them. *Collecting* hooks call every plugin. *Observer* hooks
(``tl_on_*``) call every plugin and ignore return values.

Documented hook by hook in ``docs/hooks.md``.
"""

import pluggy

PROJECT_NAME = "tl"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --- configuration -----------------------------------------------------------


@hookspec
def tl_config_keys():
    """Declare configuration keys this plugin reads from configuration.json.

    :returns: a list of :class:`tlcore.config.ConfigKey`. Every plugin is asked;
        the keys are validated like the built-in ones, and a key nobody declares
        is reported as unknown.
    """


# --- the run, in the order the orchestrator calls the hooks -----------------


@hookspec
def tl_on_run_start(config):
    """Observer: a run starts, after its configuration was validated.

    :param config: the :class:`tlcore.config.RunConfig` of the run.
    """


@hookspec(firstresult=True)
def tl_load_dataset(config, reporter):
    """Index the training and validation images. Stops at first non-None result.

    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter` for messages and progress.
    :returns: a :class:`tlcore.dataset.DatasetIndex`.
    """


@hookspec(firstresult=True)
def tl_load_base_model(config, reporter):
    """Load the base model to transfer-learn from. Stops at first non-None result.

    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: a framework model object (opaque to the core).
    """


@hookspec(firstresult=True)
def tl_remove_top_layer(model, config, reporter):
    """Turn the base model into a feature extractor. Stops at first non-None result.

    :param model: the result of :func:`tl_load_base_model`.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`; say which layers were removed.
    :returns: the feature-extractor model (it may be ``model`` itself when it has no top).
    """


@hookspec(firstresult=True)
def tl_train(model, dataset, preprocessing, config, reporter, events):
    """Train a new classification head on the frozen feature extractor.

    Stops at first non-None result.

    :param model: the result of :func:`tl_remove_top_layer`.
    :param dataset: the :class:`tlcore.dataset.DatasetIndex`.
    :param preprocessing: the :class:`tlcore.preprocessing.Preprocessing` to apply to
        every image; evaluation uses the same one.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter` for epoch lines and progress.
    :param events: a :class:`tlcore.run.RunEvents`; call ``events.epoch_start(epoch)``
        and ``events.epoch_end(epoch, logs)`` so observer plugins hear about epochs.
    :returns: the trained classifier: input image tensor -> one score per label id.
    """


@hookspec(firstresult=True)
def tl_save_model(model, path, config, reporter):
    """Save the trained classifier into the folder ``path``.

    Stops at first non-None result. ``path`` is a fresh staging folder; the core
    moves it to ``output_dir/saved_model`` only when the whole run succeeded.

    :param model: the result of :func:`tl_train`.
    :param path: a :class:`pathlib.Path` to an empty, existing folder.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: any non-None value (e.g. ``path``) to say the model was saved.
    """


@hookspec
def tl_evaluate(model, dataset, preprocessing, config, reporter):
    """Compute metrics of the trained classifier on the validation split.

    Every plugin is asked; the core merges the dicts into results.json and refuses
    a metric name reported by two plugins.

    :param model: the result of :func:`tl_train`.
    :param dataset: the :class:`tlcore.dataset.DatasetIndex`.
    :param preprocessing: the same :class:`tlcore.preprocessing.Preprocessing` as training.
    :param config: the :class:`tlcore.config.RunConfig`.
    :param reporter: the :class:`tlcore.report.Reporter`.
    :returns: a dict of JSON-serialisable metrics, or None.
    """


@hookspec
def tl_on_epoch_start(config, epoch, epochs):
    """Observer: a training epoch starts.

    :param config: the :class:`tlcore.config.RunConfig`.
    :param epoch: the epoch number, counted from 1.
    :param epochs: the number of epochs of the run.
    """


@hookspec
def tl_on_epoch_end(config, epoch, epochs, logs):
    """Observer: a training epoch ended.

    :param config: the :class:`tlcore.config.RunConfig`.
    :param epoch: the epoch number, counted from 1.
    :param epochs: the number of epochs of the run.
    :param logs: dict of metric name -> float (``loss``, ``acc``, ``val_loss``, ``val_acc``).
    """


@hookspec
def tl_on_run_end(config, metrics):
    """Observer: a run finished and its outputs were written.

    :param config: the :class:`tlcore.config.RunConfig`.
    :param metrics: the merged metrics written to results.json.
    """
