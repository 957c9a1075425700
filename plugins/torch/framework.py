"""The torch framework: what the core needs to know of it, and prediction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlcore.frameworks import MIXED_PRECISION_CAPABILITY, OPTIONAL_KEYS, Devices, Framework, Quieting, gpu_description
from tlcore.hookspecs import hookimpl

from tlplugins.torch.distributed import local_gpus

if TYPE_CHECKING:
    import numpy as np

    from tlcore.config import RunConfig

TL_FRAMEWORK = "torch"

TORCH = Framework(
    name="torch",
    summary="PyTorch + torchvision: a torchvision model (base_model, see `tl models`) or your own model "
            "(source_torch_model)",
    source_key="source_torch_model",
    keys=OPTIONAL_KEYS,
    key_hints={"source_keras_model": 'it names a Keras model; give a PyTorch model as "source_torch_model", '
                                     'or set "framework": "keras"'},
    default_preprocessing="imagenet",
    layout="NCHW",
    model_format="torch.export program: torch.export.load('model.pt2').module() takes float32 N x 3 x H x W "
                 "and returns softmax scores",
    requires=("torch", "torchvision"),
    install="install the torch extra: pip install -e '.[torch]'",
    # MCT (quantization) imports TensorFlow and reports through tqdm and its own logger
    quiet=Quieting(
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "TQDM_DISABLE": "1"},
        loggers=("tensorflow", "Model Compression Toolkit"),
    ),
)


@hookimpl
def tl_frameworks() -> list[Framework]:
    return [TORCH]


@hookimpl(trylast=True)
def tl_devices(config: RunConfig) -> Devices | None:
    """The GPUs this process uses (:func:`tlplugins.torch.distributed.local_gpus`), else the CPU."""
    import torch

    gpus = local_gpus()
    if not gpus:
        return Devices()
    capabilities = [torch.cuda.get_device_capability(index) for index in gpus]
    spread = f"data-parallel over {len(gpus)} GPUs (torch.nn.DataParallel)" if len(gpus) > 1 else ""
    return Devices(tuple(gpu_description(index, torch.cuda.get_device_name(index), capability)
                         for index, capability in zip(gpus, capabilities, strict=True)),
                   mixed_precision_benefits=all(c >= MIXED_PRECISION_CAPABILITY for c in capabilities), spread=spread)


@hookimpl(trylast=True)
def tl_predict(model: Any, images: np.ndarray) -> np.ndarray | None:
    import torch

    if hasattr(model, "predict"):  # the quantized model, run by onnxruntime
        return model.predict(images)
    with torch.inference_mode():
        return model(torch.from_numpy(images)).numpy()
