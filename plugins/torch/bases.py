"""The PyTorch base models tl builds by name: torchvision's classification models, without their head.

Each is built whole (so that torchvision's ImageNet weights load as published), then its head, the attribute
:attr:`TorchBase.head` names, is replaced by what keeps the pooled features (an identity, or global pooling where
the head pooled). What ``"weights"`` means for each: ``"imagenet"``, torchvision's ``IMAGENET1K_V1`` weights
(``IMAGENET1K_V2`` for MobileNetV2; downloaded once into ``~/.cache/torch/hub/checkpoints``, or a copy already
there); null, random weights; a file, a state dict of the same torchvision model
(``torch.save(model.state_dict(), path)``; the head's weights may be left out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from tlcore.base_models import BaseModel, torch_cache
from tlcore.calls import describe_exception
from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl

from tlplugins.imx500.measured import imx500_status

TL_FRAMEWORK = "torch"

IMAGENET_WEIGHTS = {"mobilenet_v2": "IMAGENET1K_V2"}
"""The ImageNet weights of a model when not torchvision's first (``IMAGENET1K_V1``)."""


def torchvision_model(factory: str, weights_enum: str, head: str, *, pooled_head: bool = False,
                      floor_pooling: bool = False, **arguments: Any) -> Any:
    """``build(size, weights, options)`` for ``torchvision.models.<factory>``: the whole model with the weights
    asked for, then its ``head`` attribute replaced by an identity (or, with ``pooled_head``, by the global
    pooling the head did); with ``floor_pooling``, its max pooling rounds its output size down (``ceil_mode``
    off), as the IMX500 converter requires."""

    def build(size: int, weights: Any, options: Mapping[str, Any]) -> Any:
        import torch.nn as nn
        import torchvision

        extra = dict(arguments)
        if factory == "mobilenet_v2":
            extra["width_mult"] = options.get("mobilenet_alpha", 1.0)
        model = getattr(torchvision.models, factory)(weights=None, **extra)
        if weights == "imagenet":
            if extra.get("width_mult", 1.0) != 1.0:
                raise ModelError(f'torchvision has ImageNet weights for MobileNetV2 at width 1.0 only, not '
                                 f'{extra["width_mult"]:g}; set "mobilenet_alpha" to 1.0, or "weights" to a local '
                                 "file or null")
            chosen = getattr(getattr(torchvision.models, weights_enum), IMAGENET_WEIGHTS.get(factory, "IMAGENET1K_V1"))
            model.load_state_dict(chosen.get_state_dict(progress=False))
        elif weights is not None:
            made = ", ".join(f"{key}={value!r}" for key, value in extra.items())
            load_weights_file(model, Path(weights), f"{factory}({made})", head)
        setattr(model, head, nn.AdaptiveAvgPool2d(1) if pooled_head else nn.Identity())
        if floor_pooling:
            for module in model.modules():
                if isinstance(module, nn.MaxPool2d):
                    module.ceil_mode = False
        return model.eval()

    return build


def load_weights_file(model: Any, path: Path, made: str, head: str) -> None:
    """Load a state dict (``torch.save(model.state_dict(), path)``) into ``model``; the head's weights may be
    absent."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read the weights file {path}: {describe_exception(exc)}; it must be a state dict "
                         "saved with torch.save(model.state_dict(), path)") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ModelError(f"{path} holds {type(state).__name__}, not a state dict of torchvision's {made}")
    own = {name: value for name, value in model.state_dict().items() if not name.startswith(f"{head}.")}
    body = {name: value for name, value in state.items() if name in own}
    missing = [name for name in own if name not in body]
    wrong = [name for name, value in body.items() if own[name].shape != value.shape]
    if missing or wrong:
        shown = f"{len(wrong)} have other shapes (e.g. {wrong[0]})" if wrong else \
            f"{len(missing) if body else 'all'} of its {len(own)} weights are missing (e.g. {missing[0]})"
        raise ModelError(f"{path} does not hold the weights of torchvision's {made}: {shown}; save them from "
                         f"torchvision.models.{made} with model.state_dict()")
    model.load_state_dict(body, strict=False)


def torch_base(name: str, title: str, weights_enum: str, head: str, parameters: int, feature_size: int,
               weights_file: str, *, pooled_head: bool = False, floor_pooling: bool = False,
               options: tuple[str, ...] = (), min_size: int = 32, **arguments: Any) -> BaseModel:
    return BaseModel(
        name=name, framework="torch", title=title,
        build=torchvision_model(name, weights_enum, head, pooled_head=pooled_head, floor_pooling=floor_pooling,
                                **arguments),
        parameters=parameters, feature_size=feature_size, preprocessing="imagenet",
        head=f'"{head}", replaced by ' + ("global average pooling" if pooled_head else "an identity")
        + ("; max pooling with ceil_mode off, as the IMX500 converter requires" if floor_pooling else ""),
        imagenet_weights=f"torchvision {weights_enum}", weights_file=torch_cache(weights_file), options=options,
        min_size=min_size,
        imx500=imx500_status("torch", name))


@hookimpl
def tl_base_models() -> list[BaseModel]:
    return [
        torch_base("mobilenet_v2", "MobileNetV2", "MobileNet_V2_Weights", "classifier", 2_223_872, 1280,
                   "mobilenet_v2-7ebf99e0.pth", options=("mobilenet_alpha",)),
        torch_base("mobilenet_v3_small", "MobileNetV3-Small", "MobileNet_V3_Small_Weights", "classifier", 927_008,
                   576, "mobilenet_v3_small-047dcff4.pth"),
        torch_base("mobilenet_v3_large", "MobileNetV3-Large", "MobileNet_V3_Large_Weights", "classifier",
                   2_971_952, 960, "mobilenet_v3_large-8738ca79.pth"),
        torch_base("efficientnet_b0", "EfficientNet-B0", "EfficientNet_B0_Weights", "classifier", 4_007_548, 1280,
                   "efficientnet_b0_rwightman-7f5810bc.pth"),
        torch_base("mnasnet1_0", "MnasNet 1.0", "MNASNet1_0_Weights", "classifier", 3_102_312, 1280,
                   "mnasnet1.0_top1_73.512-f206786ef8.pth"),
        torch_base("regnet_y_400mf", "RegNetY-400MF", "RegNet_Y_400MF_Weights", "fc", 3_903_144, 440,
                   "regnet_y_400mf-c65dace8.pth"),
        torch_base("resnet18", "ResNet-18", "ResNet18_Weights", "fc", 11_176_512, 512, "resnet18-f37072fd.pth"),
        torch_base("shufflenet_v2_x1_5", "ShuffleNetV2 x1.5", "ShuffleNet_V2_X1_5_Weights", "fc", 2_478_624, 1024,
                   "shufflenetv2_x1_5-3c479a10.pth"),
        torch_base("squeezenet1_0", "SqueezeNet 1.0", "SqueezeNet1_0_Weights", "classifier", 735_424, 512,
                   "squeezenet1_0-b66bff10.pth", pooled_head=True, floor_pooling=True, min_size=35),
    ]
