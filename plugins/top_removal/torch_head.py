"""The built-in top-layer removal for PyTorch models: cut off the classification head.

torchvision keeps a model's head in an attribute (``classifier`` for MobileNet,
EfficientNet and VGG, ``fc`` for ResNet, ``heads`` or ``head`` for vision
transformers): its trailing classifying layers (Linear, Dropout, Softmax,
LogSoftmax, Flatten, Identity) are removed, so the model returns the features
its head took. A plain ``nn.Sequential`` loses its classifying tail the same way. With ``"remove_top": false``
nothing is removed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Sequence

from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl
from tlcore.keys import SHARED, ConfigKey
from tlplugins.top_removal import NOTHING_REMOVED, unlike_a_classifier

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.report import Reporter

TL_FRAMEWORK = "torch"

HEAD_ATTRIBUTES = ("classifier", "fc", "heads", "head")


def is_head_layer(module: Any) -> Any:
    import torch.nn as nn

    return isinstance(module, (nn.Linear, nn.Dropout, nn.Softmax, nn.LogSoftmax, nn.Flatten, nn.Identity))


def describe(modules: Sequence[Any]) -> Any:
    return ", ".join(f"{name} ({type(module).__name__})" for name, module in modules)


def trim(sequence: Any) -> Any:
    """``(kept, removed)``: an ``nn.Sequential`` split before its trailing classifying layers."""
    import torch.nn as nn

    children = list(sequence.named_children())
    cut = len(children)
    while cut > 0 and is_head_layer(children[cut - 1][1]):
        cut -= 1
    kept = nn.Sequential(OrderedDict(children[:cut])) if cut else nn.Identity()
    return kept, children[cut:]


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [SHARED["remove_top"]]


@hookimpl(trylast=True)
def tl_remove_top_layer(model: Any, config: RunConfig, reporter: Reporter) -> Any:
    import torch.nn as nn

    if config.options["remove_top"] is False:
        reporter.info(f"{NOTHING_REMOVED}the model's output")
        return model
    if isinstance(model, nn.Sequential):
        kept, removed = trim(model)
        if isinstance(kept, nn.Identity):
            raise ModelError("the model has no layer that could give features: every layer is a classification "
                             "layer; use a model with convolutional or pooling layers, or install a top-removal plugin")
        return _report(reporter, removed, kept if removed else model, "the output of the layer before them")
    for attribute in HEAD_ATTRIBUTES:
        head = getattr(model, attribute, None)
        if isinstance(head, nn.Sequential) or (is_head_layer(head) and not isinstance(head, nn.Identity)):
            kept, removed = trim(head) if isinstance(head, nn.Sequential) else (nn.Identity(), [(attribute, head)])
            if removed:
                if _is_scripted(model):
                    break
                setattr(model, attribute, kept)
                removed = [(f"{attribute}.{name}" if name != attribute else name, module) for name, module in removed]
                return _report(reporter, removed, model, f'the input of "{attribute}"')
    if _is_scripted(model):
        reporter.info("Top layers: a TorchScript or exported model cannot be cut; its output is used as the features")
        return model
    reporter.info("Top layers: none to remove; features are the model's output")
    return model


def _report(reporter: Reporter, removed: Sequence[Any], model: Any, where: str) -> Any:
    import torch.nn as nn

    if removed:
        reporter.info(f"Top layers removed: {describe(removed)}; features are {where}")
        linears = [module for _, module in removed if isinstance(module, nn.Linear)]
        width = linears[-1].out_features if linears else None
        softmax = any(isinstance(module, (nn.Softmax, nn.LogSoftmax)) for _, module in removed)
        warning = unlike_a_classifier(removed[-1][0], width, softmax)
        if warning:
            reporter.warning(warning)
    else:
        reporter.info("Top layers: none to remove; features are the model's output")
    return model


def _is_scripted(model: Any) -> Any:
    import torch

    return isinstance(model, (torch.jit.ScriptModule, torch.fx.GraphModule))
