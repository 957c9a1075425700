"""How pixels become model input, described without a framework.

Training, evaluation, prediction and quantization use the same
:class:`Preprocessing`, and the run records it beside the saved model
(``preprocessing.json``), so that every later step, on any device, feeds the
model exactly what it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    import numpy as np

    from tlcore.base_models import BaseModel
    from tlcore.config import RunConfig
    from tlcore.frameworks import Framework

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)

PRESETS: Mapping[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    # name -> (mean, std) per RGB channel: model input = (pixel - mean) / std, pixels in [0, 255]
    "mobilenet_v2": ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5)),   # [-1, 1], Keras' MobileNet family
    "unit": ((0.0, 0.0, 0.0), (255.0, 255.0, 255.0)),                  # [0, 1]
    "none": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),                        # [0, 255], models that scale inside
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),                         # torchvision's ImageNet models
}
CHANNEL_ORDERS = ("RGB", "BGR")
FORMULA = ("input = (pixel - mean) / std per channel, pixel = RGB value in [0, 255] after resizing to size x size "
           "(bilinear), channels in channel_order, batches in layout")


@dataclass(frozen=True)
class Preprocessing:
    """Decode to RGB, resize to ``size`` x ``size`` (bilinear), then ``(pixel - mean) / std``.

    ``mean`` and ``std`` are per channel, in pixel units, in RGB order;
    ``channel_order`` is the order the model takes (``RGB`` or ``BGR``) and
    ``layout`` how batches are laid out (``NHWC`` or ``NCHW``).
    """

    name: str
    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str = "RGB"
    layout: str = "NHWC"
    resize: str = "bilinear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need 3 values each, std > 0")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"channel_order must be one of {CHANNEL_ORDERS}")

    @classmethod
    def from_config(cls, config: RunConfig, framework: Framework | None = None,
                    base: BaseModel | None = None) -> Preprocessing:
        """The configuration's ``preprocessing`` (a preset name or mean/std), else the named base's (the input its
        weights expect), else the framework's default (for a model of the user's)."""
        chosen: Any = config.preprocessing
        if chosen is None and base is not None:
            chosen = base.preprocessing
        if chosen is None:
            chosen = framework.default_preprocessing if framework is not None else "mobilenet_v2"
        layout = framework.layout if framework is not None else "NHWC"
        size = config.input_tensor_size
        if isinstance(chosen, str):
            mean, std = PRESETS[chosen]
            return cls(name=chosen, size=size, mean=mean, std=std, layout=layout)
        return cls(name="custom", size=size, mean=tuple(chosen["mean"]), std=tuple(chosen["std"]),
                   channel_order=chosen.get("channel_order", "RGB"), layout=layout)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Read back what :meth:`to_dict` wrote (``preprocessing.json``)."""
        return cls(name=data["name"], size=int(data["size"]), mean=tuple(data["mean"]), std=tuple(data["std"]),
                   channel_order=data.get("channel_order", "RGB"), layout=data.get("layout", "NHWC"),
                   resize=data.get("resize", "bilinear"))

    @property
    def uniform(self) -> bool:
        """Whether every channel is scaled alike, so that one scale and offset describe it."""
        return len(set(self.mean)) == 1 and len(set(self.std)) == 1

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name, "size": self.size, "resize": self.resize, "mean": list(self.mean),
            "std": list(self.std), "channel_order": self.channel_order, "layout": self.layout,
        }
        if self.uniform:  # the same, as one multiply-add: input = pixel * scale + offset
            data["scale"] = 1.0 / self.std[0]
            data["offset"] = 0.0 - self.mean[0] / self.std[0]
        data["formula"] = FORMULA
        return data

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """A batch of uint8 RGB pixels (n, size, size, 3) as float32 model input in :attr:`layout`."""
        import numpy as np

        scale = np.asarray([1.0 / s for s in self.std], dtype=np.float32)
        offset = np.asarray([-m / s for m, s in zip(self.mean, self.std, strict=True)], dtype=np.float32)
        batch = pixels.astype(np.float32)
        batch *= scale
        batch += offset
        if self.channel_order == "BGR":
            batch = batch[..., ::-1]
        if self.layout == "NCHW":
            batch = batch.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch)

    def describe(self) -> str:
        """A few words for the user: what pixels become."""
        if self.name in PRESETS:
            words = {"mobilenet_v2": "[-1, 1]", "unit": "[0, 1]", "none": "[0, 255]",
                     "imagenet": "ImageNet mean/std"}[self.name]
            return f"{self.name} ({words}), {self.size}x{self.size} {self.channel_order} {self.layout}"
        return f"mean {list(self.mean)}, std {list(self.std)}, {self.size}x{self.size} {self.channel_order} {self.layout}"
