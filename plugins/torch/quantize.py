"""Quantizing a PyTorch classifier for the IMX500 with MCT, exported as ONNX for Sony's converter.

The quantized model takes raw RGB pixels (0-255, N x 3 x H x W), as the device gives
them: ``(pixel - mean) / std`` is put in front of the classifier, and MCT quantizes
it with the rest. The export is MCT's ONNX, which ``imxconv-pt`` converts and
onnxruntime runs with MCT's custom operators.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterator

from tlcore.errors import ConfigError
from tlcore.hookspecs import hookimpl

from tlplugins.imx500.tpc import TPC_VERSION, target_platform

if TYPE_CHECKING:
    from pathlib import Path

    from tlcore.config import ConfigKey, RunConfig
    from tlcore.preprocessing import Preprocessing
    from tlcore.quantization import Calibration
    from tlcore.report import Reporter

TL_FRAMEWORK = "torch"
QUANTIZED_FILE = "model_quantized.onnx"


def taking_raw_pixels(model: Any, preprocessing: Preprocessing) -> Any:
    """``model`` behind ``(pixel - mean) / std``, so that it takes raw RGB pixels 0-255."""
    import torch

    class RawPixels(torch.nn.Module):
        def __init__(self, classifier: Any) -> None:
            super().__init__()
            self.classifier = classifier
            self.register_buffer("mean", torch.tensor(preprocessing.mean).reshape(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(preprocessing.std).reshape(1, 3, 1, 1))

        def forward(self, images: Any) -> Any:
            return self.classifier((images - self.mean) / self.std)

    return RawPixels(model).eval()


def representative(calibration: Calibration) -> Callable[[], Iterator[Any]]:
    """MCT's representative dataset: a callable giving an iterator of ``[batch]`` lists."""
    def batches() -> Iterator[Any]:
        for batch in calibration():
            yield [batch]
    return batches


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [TPC_VERSION]


@hookimpl(trylast=True)
def tl_quantize(model: Any, calibration: Calibration, preprocessing: Preprocessing, config: RunConfig) -> Any:
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"quantizing a PyTorch model exports it as ONNX, which needs {' and '.join(missing)}; "
                          "pip install -e '.[imx500]'")
    import model_compression_toolkit as mct

    raw = taking_raw_pixels(model, preprocessing)
    platform = target_platform(config)
    if config.quantization_method == "gptq":
        steps = config.gptq_epochs * len(calibration)
        done = [0]

        def log(*_: Any) -> None:
            done[0] += 1
            calibration.stage(f"GPTQ: step {done[0]}/{steps}")

        # Without Hessian weighting: with it, MCT spends minutes per batch on a CPU before the first step.
        settings = mct.gptq.get_pytorch_gptq_config(n_epochs=config.gptq_epochs, use_hessian_based_weights=False,
                                                    use_hessian_sample_attention=False, log_function=log)
        quantized, _ = mct.gptq.pytorch_gradient_post_training_quantization(
            raw, representative(calibration), gptq_config=settings, target_platform_capabilities=platform)
    else:
        quantized, _ = mct.ptq.pytorch_post_training_quantization(
            raw, representative(calibration), target_platform_capabilities=platform)
    return Quantized(quantized, calibration)


class Quantized:
    """MCT's quantized module, with the calibration its ONNX export needs."""

    def __init__(self, module: Any, calibration: Calibration) -> None:
        self.module = module
        self.calibration = calibration


@hookimpl(trylast=True)
def tl_export_quantized(model: Any, path: Path, reporter: Reporter) -> Path | None:
    import model_compression_toolkit as mct
    import torch

    file = path / QUANTIZED_FILE
    export = torch.onnx.export
    # MCT 2.5 calls torch.onnx.export without dynamo=, which since torch 2.9 means the new exporter;
    # that one needs onnxscript and rejects MCT's arguments. The TorchScript-based exporter works.
    torch.onnx.export = functools.partial(export, dynamo=False)
    try:
        with reporter.activity("Exporting the quantized model"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mct.exporter.pytorch_export_model(model=model.module, save_model_path=str(file),
                                              repr_dataset=representative(model.calibration))
    finally:
        torch.onnx.export = export
    return file


class OnnxModel:
    """An exported quantized model, run by onnxruntime with MCT's quantization operators."""

    def __init__(self, file: Path) -> None:
        import mct_quantizers
        import onnxruntime

        self.session = onnxruntime.InferenceSession(str(file), mct_quantizers.get_ort_session_options(),
                                                    providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def predict(self, images: Any) -> Any:
        return self.session.run(None, {self.input: images})[0]


def load_quantized(file: Path) -> Any:
    return OnnxModel(file)
