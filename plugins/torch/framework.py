"""The torch framework: what the core needs to know of it, and prediction."""

from tlcore.frameworks import OPTIONAL_KEYS, Framework
from tlcore.hookspecs import hookimpl

TL_FRAMEWORK = "torch"

TORCH = Framework(
    name="torch",
    summary="PyTorch + torchvision: MobileNetV2 or your own model (source_torch_model)",
    keys=tuple(key for key in OPTIONAL_KEYS if key != "source_keras_model"),
    key_hints={"source_keras_model": 'it names a Keras model; give a PyTorch model as "source_torch_model", '
                                     'or set "framework": "keras"'},
    default_preprocessing="imagenet",
    layout="NCHW",
    model_format="torch.export program: torch.export.load('model.pt2').module() takes float32 N x 3 x H x W "
                 "and returns softmax scores",
    requires=("torch", "torchvision"),
    install="install the torch extra: pip install -e '.[torch]'",
    # MCT (quantization) imports TensorFlow and reports through tqdm and its own logger
    quiet_env={"TF_CPP_MIN_LOG_LEVEL": "3", "TQDM_DISABLE": "1"},
    quiet_loggers=("tensorflow", "Model Compression Toolkit"),
)


@hookimpl
def tl_frameworks():
    return [TORCH]


@hookimpl(trylast=True)
def tl_devices(config):
    """The first GPU when torch sees one (the trainer uses it), else the CPU."""
    import torch

    from tlcore.frameworks import MIXED_PRECISION_CAPABILITY, Devices, gpu_description

    if not torch.cuda.is_available():
        return Devices()
    capability = tuple(torch.cuda.get_device_capability(0))
    return Devices((gpu_description(0, torch.cuda.get_device_name(0), capability),),
                   mixed_precision_benefits=capability >= MIXED_PRECISION_CAPABILITY)


@hookimpl(trylast=True)
def tl_predict(model, images):
    import torch

    if hasattr(model, "predict"):  # the quantized model, run by onnxruntime
        return model.predict(images)
    with torch.inference_mode():
        return model(torch.from_numpy(images)).numpy()
