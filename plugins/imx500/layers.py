"""Before any training: can the base model's layers run on the IMX500?

MCT quantizes nearly anything; Sony's converter is what refuses a layer, after
quantization. So the check follows the converter's own tables (imx500-converter
3.18): a layer it is known to refuse is an error when the configuration asks for
quantization (a warning otherwise), and a layer it does not list is a warning.
The head tl adds (pooling, dropout, dense, softmax) is always supported. A named base
model is checked against what tl measured of it (:mod:`tlplugins.imx500.measured`): a
base the converter refused, or that does not fit at the configured input size, is refused
the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl
from tlcore.keys import SHARED

if TYPE_CHECKING:
    from tlcore.base_models import BaseModel
    from tlcore.config import RunConfig
    from tlcore.report import Reporter

TL_FRAMEWORK = ("keras", "torch")

KERAS_SUPPORTED = {
    "Activation", "Add", "AveragePooling2D", "BatchNormalization", "Concatenate", "Conv2D", "Conv2DTranspose",
    "Dense", "DepthwiseConv2D", "Dropout", "Flatten", "GlobalAveragePooling2D", "Identity", "InputLayer",
    "LayerNormalization", "LeakyReLU", "Maximum", "MaxPooling2D", "Minimum", "Multiply", "Permute", "Resizing", "ReLU",
    "Reshape", "Softmax", "Subtract", "UpSampling2D", "ZeroPadding2D",
    "SeparableConv2D",  # MCT splits it into a depthwise and a pointwise convolution
}
KERAS_REFUSED = {
    "Lambda": "a Python function the converter cannot read; write it with Keras layers or tf operations",
    "Rescaling": "put the scaling in tl's preprocessing instead (tl builds it into the quantized model)",
    "Normalization": "put the normalisation in tl's preprocessing instead (tl builds it into the quantized model)",
    "LSTM": "recurrent layers do not run on the IMX500", "GRU": "recurrent layers do not run on the IMX500",
    "SimpleRNN": "recurrent layers do not run on the IMX500", "Bidirectional": "recurrent layers do not run on the IMX500",
    "Conv3D": "3-D convolutions do not run on the IMX500", "Conv1D": "use Conv2D",
    "ELU": "use ReLU", "Embedding": "embeddings do not run on the IMX500",
}
ACTIVATIONS = {"linear", "relu", "relu6", "gelu", "sigmoid", "hard_sigmoid", "swish", "silu", "tanh", "softmax"}
TF_FUNCTIONS = {
    "cast", "concat", "expand_dims", "image.resize", "linalg.matmul", "math.add", "math.multiply", "math.subtract",
    "math.truediv", "math.divide", "math.abs", "math.negative", "math.sqrt", "math.rsqrt", "math.sigmoid", "math.tanh",
    "math.argmax", "math.equal", "math.reduce_max", "math.reduce_mean", "math.reduce_sum", "math.top_k", "nn.relu",
    "nn.relu6", "nn.gelu", "nn.silu", "nn.softmax", "reshape", "slice", "split", "stack", "unstack", "strided_slice",
    "compat.v1.transpose", "compat.v1.pad", "compat.v1.gather", "compat.v1.squeeze", "compat.v1.norm",
    "broadcast_to", "__operators__.add", "identity",
}
TORCH_SUPPORTED = {
    "Conv2d", "ConvTranspose2d", "BatchNorm2d", "ReLU", "ReLU6", "LeakyReLU", "Hardswish", "Hardsigmoid", "Sigmoid",
    "Tanh", "GELU", "SiLU", "Softmax", "Linear", "Dropout", "Identity", "Flatten", "AdaptiveAvgPool2d", "AvgPool2d",
    "MaxPool2d", "LayerNorm", "GroupNorm", "InstanceNorm2d", "Upsample", "UpsamplingNearest2d",
    "UpsamplingBilinear2d", "ZeroPad2d", "Unflatten",
}
TORCH_REFUSED = {
    "LSTM": "recurrent layers do not run on the IMX500", "GRU": "recurrent layers do not run on the IMX500",
    "RNN": "recurrent layers do not run on the IMX500", "Conv3d": "3-D convolutions do not run on the IMX500",
    "Conv1d": "use Conv2d", "ELU": "use ReLU", "SELU": "use ReLU", "Embedding": "embeddings do not run on the IMX500",
    "MultiheadAttention": "attention blocks do not convert for the IMX500",
}


def keras_findings(model: Any) -> Any:
    """``[(layer name, type, problem, refused)]`` for the layers of a Keras model, nested models included."""
    import tensorflow as tf

    findings = []
    for layer in model.layers:
        kind = type(layer).__name__
        if isinstance(layer, tf.keras.Model):
            findings += keras_findings(layer)
            continue
        if kind in KERAS_REFUSED:
            findings.append((layer.name, kind, KERAS_REFUSED[kind], True))
        elif kind == "TFOpLambda":
            function = layer.get_config().get("function", "")
            if function not in TF_FUNCTIONS:
                findings.append((layer.name, f"tf.{function}", "the converter has no such operation", True))
        elif kind not in KERAS_SUPPORTED:
            findings.append((layer.name, kind, "not known to the IMX500 converter", False))
        activation = getattr(layer, "activation", None)
        name = getattr(activation, "__name__", None)
        if name and name not in ACTIVATIONS:
            findings.append((layer.name, f"{kind} with activation {name}", "use relu, gelu, swish or tanh", True))
    return findings


def torch_findings(model: Any) -> Any:
    """``[(module name, type, problem, refused)]`` for the layers (leaf modules) of a PyTorch model."""
    findings = []
    for name, module in model.named_modules():
        if list(module.children()):
            continue
        kind = type(module).__name__
        if kind in TORCH_REFUSED:
            findings.append((name, kind, TORCH_REFUSED[kind], True))
        elif kind == "MaxPool2d" and getattr(module, "ceil_mode", False):
            findings.append((name, "MaxPool2d with ceil_mode=True", "the converter takes ceil_mode=False only", True))
        elif kind not in TORCH_SUPPORTED:
            findings.append((name, kind, "not known to the IMX500 converter", False))
    return findings


def check_measured(base: BaseModel | None, config: RunConfig, reporter: Reporter) -> None:
    """A named base that tl measured not to convert, or not to fit at this input size: an error with
    ``"quantize": true``, else a warning; one not measured is a warning when quantizing."""
    if base is None:
        return
    size = config.input_tensor_size
    changed = [key for key in base.options if key in SHARED and config.options.get(key) != SHARED[key].default]
    if base.imx500 is None or changed:
        if config.quantize:
            how = f"with {changed[0]} {config.options[changed[0]]}" if changed else "on the IMX500"
            reporter.warning(f'base model "{base.name}" was not measured {how} (see `tl models`): whether it '
                             "converts and fits is known only after quantizing")
        return
    problem = base.imx500.problem(size)
    if problem is None:
        return
    if config.quantize:
        raise ModelError(f'base model "{base.name}" cannot run on the IMX500: {problem}; choose another base_model '
                         '(`tl models` shows which fit), a smaller input_tensor_size, or set "quantize": false')
    reporter.warning(f'base model "{base.name}" cannot run on the IMX500: {problem}; `tl quantize` would fail')


@hookimpl(trylast=True)
def tl_check_model(model: Any, config: RunConfig, reporter: Reporter, base: BaseModel | None) -> None:
    check_measured(base, config, reporter)
    if config.framework == "keras":
        findings = keras_findings(model)
    elif hasattr(model, "named_modules"):
        findings = torch_findings(model)
    else:  # a compiled or exported model: its operations cannot be listed here; the converter checks them
        return
    refused = [finding for finding in findings if finding[3]]
    if refused and config.quantize:
        name, kind, problem, _ = refused[0]
        more = f" (and {len(refused) - 1} more layers)" if len(refused) > 1 else ""
        raise ModelError(f'layer "{name}" ({kind}) cannot run on the IMX500{more}: {problem}; change the base model, '
                         'or set "quantize": false to train without quantizing')
    for name, kind, problem, is_refused in findings[:5]:
        if is_refused:
            reporter.warning(f'layer "{name}" ({kind}) cannot run on the IMX500: {problem}; `tl quantize` would fail')
        else:
            reporter.warning(f'layer "{name}" ({kind}) is {problem}; quantizing for the IMX500 may fail')
    if len(findings) > 5:
        reporter.warning(f"{len(findings) - 5} more layers may not run on the IMX500")
