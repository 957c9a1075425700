"""Saving the trained classifier as a torch.export program (``model.pt2``), and loading it back.

``torch.export.load("model.pt2").module()`` gives a module that takes float32
images (N x 3 x H x W, any N) and returns softmax scores, without tl.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from tlcore.calls import describe_exception
from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl

from tlplugins.torch.quantize import QUANTIZED_FILE, load_quantized

if TYPE_CHECKING:
    from pathlib import Path

    from tlcore.config import RunConfig
    from tlcore.report import Reporter

TL_FRAMEWORK = "torch"
MODEL_FILE = "model.pt2"
MODULE_FILE = "model.pth"
"""The same classifier as a pickled module (torch.save): what quantizing it later needs, as it can be traced."""


@hookimpl(trylast=True)
def tl_save_model(model: Any, path: Path, config: RunConfig, reporter: Reporter) -> Any:
    import torch

    size = config.input_tensor_size
    with reporter.activity("Saving the model"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = torch.export.Dim("batch", min=1, max=65536)
        program = torch.export.export(model.eval(), (torch.zeros(2, 3, size, size),),
                                      dynamic_shapes={"images": {0: batch}})
        torch.export.save(program, str(path / MODEL_FILE))
        try:
            torch.save(model, str(path / MODULE_FILE))
        except Exception:  # a TorchScript or exported base cannot be pickled: such models quantize only in `tl run`
            (path / MODULE_FILE).unlink(missing_ok=True)
    return path


@hookimpl(trylast=True)
def tl_load_model(path: Path, reporter: Reporter, purpose: str) -> Any:
    """The float model of ``saved_model/``, or the quantized ONNX model of ``imx500/``. To predict, the
    torch.export program (its loading runs no code from the file); to quantize, the pickled module when there is
    one (what MCT can trace), after a line saying that it can run code."""
    import torch

    if (path / QUANTIZED_FILE).is_file():
        with reporter.activity("Loading the model"):
            try:
                return load_quantized(path / QUANTIZED_FILE)
            except Exception as exc:
                raise ModelError(f"onnxruntime cannot load {path / QUANTIZED_FILE}: {describe_exception(exc)}") from None
    file = path / MODEL_FILE
    if not file.is_file():
        raise ModelError(f"{path} has no {MODEL_FILE}; it was not saved by the torch framework")
    with reporter.activity("Loading the model"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if purpose == "quantize" and (path / MODULE_FILE).is_file():
                reporter.info(pickle_line(path / MODULE_FILE))
                return torch.load(str(path / MODULE_FILE), map_location="cpu", weights_only=False).eval()
            return torch.export.load(str(file)).module()
        except Exception as exc:
            raise ModelError(f"PyTorch cannot load the saved model {file}: {describe_exception(exc)}") from None


def pickle_line(file: Path) -> str:
    """The line said before a pickled module is loaded."""
    return (f"Loading {file}: a pickled PyTorch module, which can run code when loaded; load only files you trust "
            "(a torch.export program, .pt2, or TorchScript runs none)")
