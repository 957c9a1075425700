"""Named base models: the networks a framework pack can build by name (``"base_model": "efficientnet_b0"``).

A plugin declares them with ``tl_base_models`` as :class:`BaseModel` s, each with
everything tl needs to use it as it uses MobileNetV2: how to build it (with
ImageNet, random or a file's weights, without its classification head), its
preprocessing, input sizes and feature size, and, where measured, whether it runs on
the IMX500 (:class:`Imx500Status`). ``tl models`` lists them; a run builds the one
its configuration names, and a user's own model (``source_keras_model``,
``source_torch_model``) takes the place of all of them.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from tlcore.calls import describe_exception
from tlcore.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.frameworks import Framework
    from tlcore.pluginmanager import PluginManager
    from tlcore.report import Reporter

DEFAULT_BASE = "mobilenet_v2"


@dataclass(frozen=True)
class Imx500Status:
    """What tl measured of a base on the IMX500 (``bench/models.py``), at :attr:`size` pixels.

    :param converts: whether Sony's converter turned the quantized model into an IMX500 package.
    :param memory_mb: chip memory the converted model uses, in MB (None when it did not convert).
    :param capacity_mb: the chip memory there is, in MB (the converter's report says it).
    :param fits: whether it fits in that memory (None when it did not convert).
    :param reason: why it does not convert or fit, in a line; None when it does.
    :param converter: the converter and its version, e.g. ``"imxconv-tf 3.18.2"``.
    :param size: the input size measured.
    """

    converts: bool
    memory_mb: float | None = None
    capacity_mb: float = 8.0
    fits: bool | None = None
    reason: str | None = None
    converter: str = ""
    size: int = 224

    def to_dict(self) -> dict[str, Any]:
        return {"converts": self.converts, "memory_mb": self.memory_mb, "fits": self.fits, "reason": self.reason,
                "converter": self.converter, "size": self.size, "capacity_mb": self.capacity_mb}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Imx500Status:
        return cls(converts=bool(data["converts"]), memory_mb=data.get("memory_mb"),
                   capacity_mb=float(data.get("capacity_mb") or 8.0), fits=data.get("fits"),
                   reason=data.get("reason"), converter=data.get("converter", ""), size=int(data.get("size", 224)))

    def estimated_memory(self, size: int) -> float | None:
        """Chip memory at ``size`` pixels, in MB: the measured figure at the measured size or below (memory does not
        grow when the input shrinks), scaled with the input's area above it (activations grow with it; weights do
        not, so this errs on the large side); None when nothing was measured."""
        if self.memory_mb is None:
            return None
        return self.memory_mb if size <= self.size else self.memory_mb * (size / self.size) ** 2

    def problem(self, size: int) -> str | None:
        """Why this base cannot run on the IMX500 at ``size`` pixels, in a line; None when it can, as measured."""
        if not self.converts:
            return f"Sony's converter ({self.converter or 'as measured'}) refuses it: {self.reason or 'no reason given'}"
        memory = self.estimated_memory(size)
        if memory is None:
            return None
        if size == self.size and self.fits is False:
            return f"it needs {memory:.2f} MB of the chip's {self.capacity_mb:.2f} MB at {size}x{size}"
        if memory > self.capacity_mb:
            how = "measured" if size <= self.size else f"estimated from {self.memory_mb:.2f} MB measured at " \
                                                       f"{self.size}x{self.size}"
            return f"it needs about {memory:.2f} MB of the chip's {self.capacity_mb:.2f} MB at {size}x{size} ({how})"
        return None


@dataclass(frozen=True)
class BaseModel:
    """A base model a framework pack builds by name.

    :param name: the value of ``"base_model"``, in torchvision's lowercase style (``efficientnet_b0``); the same
        architecture has the same name in every framework.
    :param framework: the framework that builds it (``keras``, ``torch``).
    :param title: its usual name, e.g. ``"EfficientNet-B0"``.
    :param build: ``build(size, weights, options)``: the model without its classification head, taking
        ``size`` x ``size`` images, with ``weights`` ``"imagenet"``, None (random) or a file's path; ``options``
        are the configuration's plugin keys (e.g. ``mobilenet_alpha``). Heavy libraries are imported inside.
    :param parameters: the number of weights of the model without its head, at the default options (trained
        weights: BatchNorm's running statistics are not counted, so the same network counts the same in every
        framework).
    :param feature_size: the length of the feature vector it gives, pooled.
    :param preprocessing: the preprocessing preset its weights expect (``mobilenet_v2``, ``imagenet``, ...).
    :param default_size: the input size its ImageNet weights were trained at.
    :param min_size: the smallest input size it takes.
    :param max_size: the largest input size tl allows it.
    :param head: where its classification head is and how tl leaves it out, in a few words.
    :param imagenet_weights: where ``"weights": "imagenet"`` comes from, in a few words; None when the library
        has no ImageNet weights for it.
    :param weights_file: the file the ImageNet weights are cached in (``~/.keras/models/...``,
        ``~/.cache/torch/hub/checkpoints/...``), to say whether they are on this machine.
    :param options: the configuration keys only this base reads (``mobilenet_alpha``): setting one with
        another base is an error.
    :param imx500: what tl measured of it on the IMX500; None when not measured.
    """

    name: str
    framework: str
    title: str
    build: Callable[..., Any] = field(repr=False, compare=False)
    parameters: int
    feature_size: int
    preprocessing: str = "imagenet"
    default_size: int = 224
    min_size: int = 32
    max_size: int = 1024
    head: str = ""
    imagenet_weights: str | None = None
    weights_file: Path | None = None
    options: tuple[str, ...] = ()
    imx500: Imx500Status | None = None

    @property
    def weights_cached(self) -> bool:
        """Whether its ImageNet weights are on this machine already (no download needed)."""
        return self.weights_file is not None and self.weights_file.is_file()

    def record(self) -> dict[str, Any]:
        """What ``tl models --json`` prints for it."""
        return {
            "framework": self.framework, "name": self.name, "title": self.title, "parameters": self.parameters,
            "feature_size": self.feature_size, "preprocessing": self.preprocessing,
            "default_size": self.default_size, "min_size": self.min_size, "max_size": self.max_size,
            "head": self.head,
            "imagenet_weights": {"available": self.imagenet_weights is not None, "source": self.imagenet_weights,
                                 "cached": self.weights_cached},
            "options": list(self.options),
            "imx500": self.imx500.to_dict() if self.imx500 is not None else None,
        }


def keras_cache(name: str) -> Path:
    """Where Keras keeps a downloaded weights file."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models" / name


def torch_cache(name: str) -> Path:
    """Where torchvision keeps a downloaded weights file."""
    home = os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch"
    return Path(home) / "hub" / "checkpoints" / name


def registered_base_models(manager: PluginManager, errors: dict[str, str] | None = None
                           ) -> dict[tuple[str, str], tuple[BaseModel, str]]:
    """``{(framework, name): (BaseModel, plugin name)}`` of every base the plugins declare.

    A plugin returning something else, or a base declared twice for one framework, raises PluginError, unless
    ``errors`` is a dict: then the error is stored under the plugin's name.
    """
    from tlcore.calls import declarations

    return declarations(manager, "tl_base_models", BaseModel, lambda base: (base.framework, base.name),
                        lambda base: f'base model "{base.name}" of framework {base.framework}', errors)


def select_base_model(config: RunConfig, framework: Framework,
                      bases: Mapping[tuple[str, str], tuple[BaseModel, str]]) -> BaseModel | None:
    """The base ``config`` names (``base_model``) for ``framework``, checked; None when the configuration gives its
    own model (``source_keras_model``, ...) or no plugin reads ``base_model``. Raises a one-line ConfigError for an
    unknown name, a name given beside a model of the user's, a key of another base, or a size it does not take."""
    name = config.options.get("base_model")
    if name is None:
        return None

    def source(key: str) -> str:
        return config.set_label if key in config.set_keys else config.config_file.name

    own = config.options.get(framework.source_key) if framework.source_key else None
    if own is not None:
        if "base_model" in config.given_keys:
            raise ConfigError(f'{source("base_model")}: "base_model" and "{framework.source_key}" both choose the '
                              f'base model; keep one ("base_model" builds a known network, "{framework.source_key}" '
                              "loads yours)")
        return None
    available = {key[1]: base for key, (base, _) in bases.items() if key[0] == framework.name}
    if name not in available:
        elsewhere = sorted(fw for fw, other in bases if other == name)
        close = difflib.get_close_matches(name, list(available), n=1)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        if elsewhere:
            hint = f'framework {" and ".join(elsewhere)} has it; ' + hint
        listed = ", ".join(sorted(available)) or "none (is a built-in plugin blocked?)"
        raise ConfigError(f'{source("base_model")}: "base_model" is "{name}", which framework {framework.name} does '
                          f"not have; {hint}available: {listed} (see `tl models`)")
    base = available[name]
    others = {option for (other, _) in bases.values() for option in other.options} - set(base.options)
    for key in sorted(others & config.given_keys):
        owners = sorted({other.name for (other, _) in bases.values() if key in other.options})
        raise ConfigError(f'{source(key)}: "{key}" applies to base model {" and ".join(owners)} only, not to '
                          f'"{name}"; remove it')
    size = config.input_tensor_size
    if not base.min_size <= size <= base.max_size:
        fix = f"{base.min_size} or more" if size < base.min_size else f"{base.max_size} or less"
        raise ConfigError(f'{source("input_tensor_size")}: {base.title} ("{name}") takes images of '
                          f"{base.min_size} to {base.max_size} pixels, but input_tensor_size is {size}; set it to "
                          f"{fix} ({base.default_size} is the size its ImageNet weights were trained at)")
    return base


def build_named(base: BaseModel, config: RunConfig, reporter: Reporter,
                file_error: Callable[[Exception], str] | None = None) -> Any:
    """``base`` built with the configured ``weights`` at the configured size, as both framework packs build their
    bases: a warning for random weights; a failed ImageNet download is a one-line ModelError with the ways out, and
    so is a weights file the build cannot read when ``file_error`` says what the file must hold."""
    weights = config.options["weights"]
    if weights is None:
        reporter.warning(
            f'{base.title} with random weights ("weights": null): its features are random projections, so expect '
            "far lower accuracy than with ImageNet weights; for real use give a weights file"
        )
    try:
        return base.build(config.input_tensor_size, weights, config.options)
    except ModelError:
        raise
    except Exception as exc:
        if weights == "imagenet":
            raise ModelError(
                f"could not get the ImageNet weights of {base.title} ({describe_exception(exc)}); without network "
                'access set "weights" to a local weights file, or to null for random weights'
            ) from None
        if weights is not None and file_error is not None:
            raise ModelError(file_error(exc)) from None
        raise


def list_bases(manager: PluginManager, framework: str | None = None) -> list[dict[str, Any]]:
    """``tl models --json``: a record (:meth:`BaseModel.record`) of every base the plugins declare, or of
    ``framework``'s, by framework and name; ``"default"`` marks the one a configuration without ``base_model``
    builds, ``"plugin"`` names who declares it."""
    records = []
    for (declared_for, name), (base, plugin) in sorted(registered_base_models(manager).items()):
        if framework is not None and declared_for != framework:
            continue
        records.append({**base.record(), "default": name == DEFAULT_BASE, "plugin": plugin})
    return records


def parameters_shown(count: int) -> str:
    """``2.2 M``, ``735 k``: a parameter count in a few characters."""
    return f"{count / 1e6:.1f} M" if count >= 1_000_000 else f"{count / 1e3:.0f} k"


def imx500_shown(record: Mapping[str, Any] | None) -> str:
    """A base's IMX500 status (``Imx500Status.to_dict``) in a few words, for ``tl models``."""
    if record is None:
        return "not measured"
    if not record["converts"]:
        return "does not convert"
    if record["memory_mb"] is None:
        return "converts"
    verdict = "fits" if record["fits"] else "does not fit" if record["fits"] is False else "converts"
    return f'{verdict}: {record["memory_mb"]:.2f} of {record["capacity_mb"]:.2f} MB at {record["size"]} px'
