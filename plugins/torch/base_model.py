"""The base model: a named torchvision model (:mod:`tlplugins.torch.bases`; MobileNetV2 by default), without its
head, or the user's PyTorch model (``source_torch_model``)."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore.base_models import build_named
from tlcore.calls import describe_exception
from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl
from tlcore.keys import SHARED, ConfigKey

from tlplugins.torch.saving import pickle_line

if TYPE_CHECKING:
    from tlcore.base_models import BaseModel
    from tlcore.config import RunConfig
    from tlcore.report import Reporter

TL_FRAMEWORK = "torch"


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [
        ConfigKey("source_torch_model", "path", default=None, nullable=True, path_kind="file",
                  help="your own base model, in place of base_model: a whole PyTorch model saved with "
                       "torch.save(model), torch.jit.save or torch.export.save"),
        SHARED["base_model"], SHARED["weights"], SHARED["mobilenet_alpha"],
    ]


def random_initialise(model: Any, size: int, seed: int | None = None) -> None:
    """Random weights whose frozen features still tell images apart.

    torchvision's own initialisation (He scaling, fan-out) puts a deep network such as
    MobileNetV2 in a chaotic regime: in inference mode its features barely depend on the
    image. LeCun scaling (std = sqrt(1 / fan-in)) keeps them informative but shrinks them
    about a thousandfold on the way through, so the last convolution is then scaled
    to give features of about unit size on noise images (no data is used).
    """
    import torch

    generator = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    convolutions = [module for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv in convolutions:
            fan_in = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
            conv.weight.normal_(0.0, math.sqrt(1.0 / fan_in), generator=generator)
        noise = torch.rand(8, 3, size, size, generator=generator) * 4 - 2
        features = model.eval()(noise)
        features = features.mean(dim=(2, 3)) if features.dim() == 4 else features
        convolutions[-1].weight.mul_(1.0 / max(float(features.std()), 1e-12))


def load_named(base: BaseModel, config: RunConfig, reporter: Reporter) -> Any:
    """The named base ``base`` (:mod:`tlplugins.torch.bases`) without its head, with the configured weights."""
    import torch

    weights, alpha, size = config.options["weights"], config.options["mobilenet_alpha"], config.input_tensor_size
    shown = "ImageNet" if weights == "imagenet" else ("random" if weights is None else str(weights))
    if config.seed is not None:
        torch.manual_seed(config.seed)
    model = build_named(base, config, reporter)
    if weights is None:
        random_initialise(model, size, config.seed)
    width = f"width {alpha:g}, " if "mobilenet_alpha" in base.options else ""
    reporter.info(f"Base model: torchvision {base.title} ({width}{size}x{size}, {shown} weights, head {base.head})")
    return model.eval()


def load_user_model(path: Path, config: RunConfig, reporter: Reporter) -> Any:
    """A whole model: TorchScript (torch.jit.save), a torch.export program (.pt2), or a pickled nn.Module."""
    import torch

    model = None
    errors = []
    loaders = [("torch.export", lambda: torch.export.load(str(path)).module()),
               ("TorchScript", lambda: torch.jit.load(str(path), map_location="cpu")),
               ("torch.save", lambda: torch.load(str(path), map_location="cpu", weights_only=False))]
    if not zipfile.is_zipfile(path):
        loaders = loaders[2:]
    for kind, load in loaders:
        if kind == "torch.save":
            reporter.info(pickle_line(path))
        try:
            model = load()
            break
        except Exception as exc:
            errors.append(f"{kind}: {describe_exception(exc)}")
    if model is None:
        raise ModelError(f"PyTorch cannot load the model {path} ({errors[-1]}); give a whole model saved with "
                         "torch.save(model), torch.jit.save or torch.export.save")
    if isinstance(model, dict):
        raise ModelError(f"{path} holds only weights (a state dict), not a model; save the whole model with "
                         "torch.save(model, path)")
    if not isinstance(model, torch.nn.Module):
        raise ModelError(f"{path} holds {type(model).__name__}, not a PyTorch model (torch.nn.Module)")
    size = config.input_tensor_size
    try:
        with torch.inference_mode():
            output = inference_mode(model)(torch.zeros(1, 3, size, size))
    except Exception as exc:
        raise ModelError(f"{path} cannot take {size}x{size} RGB images (1 x 3 x {size} x {size}): "
                         f"{describe_exception(exc)}; set input_tensor_size to the size it was made for") from None
    if not isinstance(output, torch.Tensor):
        raise ModelError(f"{path} returns {type(output).__name__}; tl needs a model that returns one tensor")
    layers = sum(1 for module in model.modules() if not list(module.children()))
    reporter.info(f"Base model: {path} ({type(model).__name__}, {layers} layers, input 3x{size}x{size})")
    return model


def inference_mode(model: Any) -> Any:
    """``model`` with dropout and batch normalisation in inference mode; a torch.export program is
    fixed in it already and refuses ``eval()``."""
    try:
        return model.eval()
    except NotImplementedError:
        return model


@hookimpl(trylast=True)
def tl_load_base_model(config: RunConfig, reporter: Reporter, base: BaseModel | None) -> Any:
    with reporter.activity("Loading the base model"):
        path = config.options.get("source_torch_model")
        if path is None:
            if base is None:
                raise ModelError('no base model: "base_model" names none (is the plugin that declares it blocked?) '
                                 'and "source_torch_model" is not set')
            return load_named(base, config, reporter)
        if config.options["weights"] != "imagenet":
            reporter.warning('"weights" applies to a named base model only; it is ignored with "source_torch_model"')
        return load_user_model(path, config, reporter)
