"""How pixels become model input, described without a framework.

Training and evaluation use the same :class:`Preprocessing`, and the run records it
beside the saved model (``preprocessing.json``) so that later steps, such as
quantization with MCT, feed the model exactly what it was trained on.
"""

from dataclasses import asdict, dataclass

# name -> (scale, offset): model input = pixel * scale + offset, pixels in [0, 255]
SCALINGS = {
    "mobilenet_v2": (1 / 127.5, -1.0),
    "unit": (1 / 255.0, 0.0),
    "none": (1.0, 0.0),
}


@dataclass(frozen=True)
class Preprocessing:
    """Decode to RGB, resize to ``size`` x ``size`` (bilinear), then ``x * scale + offset``."""

    name: str
    size: int
    scale: float
    offset: float
    channels: int = 3
    resize: str = "bilinear"

    @classmethod
    def from_config(cls, config):
        scale, offset = SCALINGS[config.preprocessing]
        return cls(name=config.preprocessing, size=config.input_tensor_size, scale=scale, offset=offset)

    def to_dict(self):
        data = asdict(self)
        data["formula"] = "input = pixel * scale + offset, pixel in [0, 255], RGB, resized to size x size"
        return data
