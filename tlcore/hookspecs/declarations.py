"""Declarations: the configuration keys and the frameworks plugins add."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tlcore.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from tlcore.base_models import BaseModel
    from tlcore.config import ConfigKey
    from tlcore.frameworks import Framework


@hookspec
def tl_config_keys() -> list[ConfigKey]:
    """Declare the configuration keys your plugin reads from `configuration.json`. *Collecting*:
    every plugin is asked. Declared keys are validated like the built-in ones (type, range,
    choices, paths resolved from the configuration file's folder); keys nobody declares are still
    reported as unknown. Values reach hooks as `config.options["key"]`, defaults filled in. The
    keys of a plugin that serves another framework than the selected one are refused with a
    message naming their framework (left out when empty or null, as the SDK's `"source_keras_model": ""`).
    The built-in plugins declare their keys the same way (the reports plugin `tensorboard`, the IMX500
    plugins `tpc_version` and `imx500_input_persistency`, the Keras base model `source_keras_model`). A
    key several plugins read is declared once, in `tlcore.keys.SHARED_KEYS` (`weights`,
    `mobilenet_alpha`, `base_model`, `remove_top`, `distribute`, `worker_timeout`), and each returns it: the same key declared twice is accepted only when the
    declarations are equal. `ConfigKey(..., affects_model=False)` marks a key the trained model does not
    depend on (it may change between `tl run` and `tl quantize`); `starter=tlcore.keys.DEFAULT` makes
    `tl init` write it. `tl config keys` lists every key and who reads it.

    - Returns: `list[tlcore.config.ConfigKey]`.

    ```python
    from tlcore.config import ConfigKey
    from tlcore.hookspecs import hookimpl

    @hookimpl
    def tl_config_keys():
        return [ConfigKey("mixup_alpha", "number", default=0.0, minimum=0, help="mixup strength; 0 = off")]
    ```
    """


@hookspec
def tl_frameworks() -> list[Framework]:
    """Declare frameworks. *Collecting*: every plugin is asked; a framework name declared twice is an
    error. A `tlcore.frameworks.Framework` tells the core what it cannot learn from hooks: its
    `name` (the value of `"framework"`), a one-line `summary`, which optional core keys it
    honours (`keys`, from `OPTIONAL_KEYS`: `preprocessing`, `learning_rate`, `dropout`, `weight_decay`, `label_smoothing`, `head_search`, `augmentation`, `augmentation_views`,
    `fine_tune_layers`, `feature_cache`, `early_stopping_patience`, `early_stopping_monitor`,
    `holdout_fraction`, `learning_rate_schedule`, `warmup_epochs`, `class_weight`,
    `fine_tune_epochs`, `fine_tune_learning_rate`, `mixed_precision`; giving another one is an error), its `default_preprocessing` preset and
    tensor `layout` (`NHWC` or `NCHW`), the `model_format` it saves, the modules it `requires`
    (checked at start-up, without importing them, with `install` as the advice), and how to
    quieten its libraries (`quiet`, a `tlcore.frameworks.Quieting`: `env`, `loggers`, `message_noise`).

    - Returns: `list[tlcore.frameworks.Framework]`.

    ```python
    from tlcore.frameworks import Framework

    TL_FRAMEWORK = "jax"

    @hookimpl
    def tl_frameworks():
        return [Framework("jax", summary="JAX + Flax", keys=("learning_rate", "weights"),
                          default_preprocessing="imagenet", requires=("jax", "flax"),
                          install="pip install jax flax")]
    ```
    """


# --- the run, in the order the orchestrator calls the hooks -----------------


@hookspec
def tl_base_models() -> list[BaseModel]:
    """Declare base models a framework builds by name (`"base_model"`). *Collecting*: every plugin is
    asked; the same name declared twice for one framework is an error. A `tlcore.base_models.BaseModel`
    gives its `name` (torchvision's lowercase style: the same architecture has the same name in every
    framework), `framework`, `title`, and what tl needs to use it as it uses MobileNetV2: `build(size,
    weights, options)` returning the model without its classification head (`weights` is `"imagenet"`,
    None for random weights, or a file's path; heavy libraries imported inside), its `parameters` and
    pooled `feature_size`, its `preprocessing` preset, `default_size`, `min_size` and `max_size`, where
    its `head` was, where `imagenet_weights` come from and the `weights_file` they are cached in, the
    configuration keys only it reads (`options`), and, where measured, its `imx500` status
    (`tlcore.base_models.Imx500Status`: converts, chip memory, fits, at which size). `tl models` lists
    them; the framework pack's `tl_load_base_model` builds the one the configuration names. The built-in
    packs declare ten Keras applications and nine torchvision models this way.

    - Returns: `list[tlcore.base_models.BaseModel]`.

    ```python
    from tlcore.base_models import BaseModel

    def build(size, weights, options):
        import tensorflow as tf
        return tf.keras.applications.DenseNet121(input_shape=(size, size, 3), include_top=False,
                                                 weights=weights)

    @hookimpl
    def tl_base_models():
        return [BaseModel("densenet121", "keras", "DenseNet-121", build, parameters=6_953_856,
                          feature_size=1024, preprocessing="imagenet")]
    ```
    """
