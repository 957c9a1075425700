"""The base model: torchvision's MobileNetV2 by default, or the user's PyTorch model (``source_torch_model``)."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore.calls import describe_exception
from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl
from tlcore.keys import SHARED, ConfigKey

from tlplugins.torch.saving import pickle_line

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.report import Reporter

TL_FRAMEWORK = "torch"


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [
        ConfigKey("source_torch_model", "path", default=None, nullable=True, path_kind="file",
                  help="base model: a whole PyTorch model saved with torch.save(model), torch.jit.save or "
                       "torch.export.save; empty = torchvision's MobileNetV2"),
        SHARED["weights"], SHARED["mobilenet_alpha"],
    ]


def random_initialise(model: Any, size: int, seed: int | None = None) -> None:
    """Random weights whose frozen features still tell images apart.

    torchvision's own initialisation (He scaling, fan-out) puts a deep MobileNetV2
    in a chaotic regime: in inference mode its features barely depend on the image.
    LeCun scaling (std = sqrt(1 / fan-in)) keeps them informative but shrinks them
    about a thousandfold on the way through, so the last convolution is then scaled
    to give features of unit size on noise images (no data is used).
    """
    import torch

    generator = torch.Generator().manual_seed(seed if seed is not None else torch.seed())
    convolutions = [module for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
    with torch.no_grad():
        for conv in convolutions:
            fan_in = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
            conv.weight.normal_(0.0, math.sqrt(1.0 / fan_in), generator=generator)
        noise = torch.rand(8, 3, size, size, generator=generator) * 4 - 2
        features = model.eval().features(noise).mean(dim=(2, 3))
        convolutions[-1].weight.mul_(1.0 / max(float(features.std()), 1e-12))


def load_mobilenet_v2(config: RunConfig, reporter: Reporter) -> Any:
    import torch
    import torchvision

    weights, alpha, size = config.options["weights"], config.options["mobilenet_alpha"], config.input_tensor_size
    shown = "ImageNet" if weights == "imagenet" else ("random" if weights is None else str(weights))
    if config.seed is not None:
        torch.manual_seed(config.seed)
    model = torchvision.models.mobilenet_v2(weights=None, width_mult=alpha)
    if weights is None:
        reporter.warning(
            'MobileNetV2 with random weights ("weights": null): its features are random projections, so expect '
            "far lower accuracy than with ImageNet weights; for real use give a weights file"
        )
        random_initialise(model, size, config.seed)
    elif weights == "imagenet":
        if alpha != 1.0:
            raise ModelError(f'torchvision has ImageNet weights for MobileNetV2 at width 1.0 only, not {alpha:g}; '
                             'set "mobilenet_alpha" to 1.0, or "weights" to a local file or null')
        try:
            state = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V2.get_state_dict(progress=False)
        except Exception as exc:
            raise ModelError(
                f"could not get the ImageNet weights of MobileNetV2 ({describe_exception(exc)}); "
                'without network access set "weights" to a local weights file, or to null for random weights'
            ) from None
        model.load_state_dict(state)
    else:
        load_weights_file(model, weights, alpha)
    reporter.info(f"Base model: torchvision MobileNetV2 (width {alpha:g}, {size}x{size}, {shown} weights)")
    return model.eval()


def load_weights_file(model: Any, path: Path, alpha: float) -> None:
    """Load a state dict (torch.save(model.state_dict())) into ``model``; the classifier's weights may be absent."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read the weights file {path}: {describe_exception(exc)}; it must be a state dict "
                         "saved with torch.save(model.state_dict(), path)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path} holds {type(state).__name__}, not a state dict of MobileNetV2 weights")
    own = model.state_dict()
    features = {name: value for name, value in state.items() if name.startswith("features.")}
    missing = [name for name in own if name.startswith("features.") and name not in features]
    wrong = [name for name, value in features.items() if name in own and own[name].shape != value.shape]
    if missing or wrong or not features:
        raise ModelError(
            f"{path} does not hold MobileNetV2 weights for width {alpha:g}: "
            + (f"{len(wrong)} have other shapes (e.g. {wrong[0]})" if wrong else
               f"{len(missing) or 'all'} feature weights are missing")
            + f"; save them from torchvision.models.mobilenet_v2(width_mult={alpha:g}) with model.state_dict()"
        )
    model.load_state_dict(features, strict=False)


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
def tl_load_base_model(config: RunConfig, reporter: Reporter) -> Any:
    with reporter.activity("Loading the base model"):
        path = config.options.get("source_torch_model")
        if path is None:
            return load_mobilenet_v2(config, reporter)
        if config.options["weights"] != "imagenet":
            reporter.warning('"weights" applies to the default MobileNetV2 only; it is ignored with "source_torch_model"')
        return load_user_model(path, config, reporter)
