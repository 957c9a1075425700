"""Decoding and augmenting images, the same way for every framework.

Pillow decodes every file: EXIF orientation is applied, CMYK, grayscale,
palette and 16-bit images become 8-bit RGB, and a JPEG much larger than the
input is decoded at a reduced scale (1/2, 1/4 or 1/8, done inside the JPEG
decoder) before the bilinear resize, so a 12-megapixel photo costs little more
than a small one. Augmentation works on the resized uint8 pixels, drawn from a
random generator seeded by the run's seed, the epoch and the image's index, so
the result depends on the image, not on which thread or worker handled it.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Sequence

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
"""The file names (lower case) tl reads as images: in datasets, for tl init and for tl predict."""

if TYPE_CHECKING:
    import numpy as np

AUGMENTATIONS = ("flip", "crop", "rotation", "zoom", "contrast", "brightness")
VIEW_AUGMENTATIONS = ("flip", "crop")
"""What makes the augmented views of a frozen base's cached features when ``augmentation`` is not set."""
CROP = 0.8
"""A random crop keeps a square of at least this share of the side, anywhere in the image."""
ROTATION_DEGREES = 18.0
"""Largest rotation, either way (Keras' RandomRotation(0.05) of a full turn)."""
ZOOM = 0.1
CONTRAST = 0.2
BRIGHTNESS = 0.2 * 255
DRAFT_MARGIN = 2
"""A JPEG is decoded at the smallest scale that keeps it at least this many times the input size."""
MAX_IMAGE_PIXELS = [40_000_000]
"""The largest image decoded, in pixels as the decoder would produce them (a JPEG after its reduced-scale
decoding): a 13000 x 13000 PNG of 328 KB would take 4.6 GB. Set by the run from ``max_image_pixels``
(:func:`limit_pixels`); a list, so the decoding threads see the run's value."""


def limit_pixels(pixels: int) -> None:
    """Decode images of at most ``pixels`` pixels from now on (the configuration's ``max_image_pixels``)."""
    MAX_IMAGE_PIXELS[0] = pixels


class UndecodableImage(Exception):
    """An image file that passed the byte checks but cannot be decoded; ``str()`` says why."""


def decode(path: str, size: int) -> np.ndarray:
    """``path`` as uint8 RGB pixels of shape (size, size, 3): upright, resized bilinearly.

    :raises UndecodableImage: when the file cannot be decoded.
    """
    import numpy as np
    from PIL import Image, ImageOps

    # tl's own limit (max_image_pixels) replaces Pillow's bomb warning; a filter for good, not catch_warnings, which
    # is not thread-safe: decoding threads restoring filters let it through in another thread
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # palette notes
            with Image.open(path) as opened:
                if opened.format == "JPEG":
                    opened.draft("RGB", (size * DRAFT_MARGIN, size * DRAFT_MARGIN))
                width, height = opened.size
                if width * height > MAX_IMAGE_PIXELS[0]:
                    raise UndecodableImage(f"{width}x{height} pixels, more than max_image_pixels "
                                           f"({MAX_IMAGE_PIXELS[0]:,}); make it smaller, or raise the limit")
                image = _as_rgb(ImageOps.exif_transpose(opened))
                if image.size != (size, size):
                    image = image.resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise UndecodableImage(_reason(exc)) from None


def _as_rgb(image: Any) -> Any:
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grayscale: scale to 8 bits, not clip
        import numpy as np

        values = np.asarray(image, dtype=np.float32)  # float32 in place: no float64 copy of a large scan
        peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        values *= np.float32(255.0 / peak)
        np.clip(values, 0, 255, out=values)
        image = Image.fromarray(values.astype(np.uint8), mode="L")
    return image if image.mode == "RGB" else image.convert("RGB")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def random_generator(seed: int, *keys: int) -> np.random.Generator:
    """A generator determined by ``seed`` and ``keys`` (epoch, image index, ...)."""
    import numpy as np

    return np.random.default_rng([seed, *keys])


def augment(pixels: np.ndarray, names: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Apply the named random changes to one image of uint8 pixels (size, size, 3)."""
    import numpy as np

    image = pixels
    if "crop" in names:
        image = _crop(image, rng)
    if "rotation" in names or "zoom" in names:
        angle = rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES) if "rotation" in names else 0.0
        zoom = rng.uniform(1 - ZOOM, 1 + ZOOM) if "zoom" in names else 1.0
        image = _rotate_and_zoom(image, angle, zoom)
    if "flip" in names and rng.random() < 0.5:
        image = image[:, ::-1]
    if "contrast" in names or "brightness" in names:
        values = image.astype(np.float32)
        if "contrast" in names:
            mean = values.mean(axis=(0, 1), keepdims=True)
            values = (values - mean) * rng.uniform(1 - CONTRAST, 1 + CONTRAST) + mean
        if "brightness" in names:
            values = values + rng.uniform(-BRIGHTNESS, BRIGHTNESS)
        image = np.clip(values, 0, 255)
    return np.ascontiguousarray(image, dtype=np.uint8)


def view(pixels: np.ndarray, number: int, names: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    """Augmented view ``number`` (1, 2, ...) of one image (view 0 is the image itself).

    With ``flip`` among ``names``, the odd views are mirrored, so that view 1 is the mirror image
    (the cheapest view worth having) and the later views alternate; the other changes are drawn
    from ``rng`` for views 2 and later (for every view, without ``flip``).
    """
    import numpy as np

    others = [name for name in names if name != "flip"]
    image = pixels
    if others and ("flip" not in names or number >= 2):
        image = augment(image, others, rng)
    if "flip" in names and number % 2 == 1:
        image = image[:, ::-1]
    return np.ascontiguousarray(image, dtype=np.uint8)


def _crop(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random square of CROP to all of the side, anywhere in the image, resized back to the full size."""
    import numpy as np
    from PIL import Image

    size = pixels.shape[0]
    side = size * rng.uniform(CROP, 1.0)
    left, top = rng.uniform(0, size - side, 2)
    box = (left, top, left + side, top + side)
    return np.asarray(Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR, box=box),
                      dtype=np.uint8)


def _rotate_and_zoom(pixels: np.ndarray, angle: float, zoom: float) -> np.ndarray:
    """Rotate by ``angle`` degrees and zoom by ``zoom`` (> 1: in) about the centre, edges reflected."""
    import numpy as np
    from PIL import Image

    size = pixels.shape[0]
    pad = size // 2
    padded = Image.fromarray(np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)), mode="reflect"))
    rotated = padded.rotate(angle, resample=Image.Resampling.BILINEAR) if angle else padded
    side = size / zoom
    centre = pad + size / 2
    box = (centre - side / 2, centre - side / 2, centre + side / 2, centre + side / 2)
    return np.asarray(rotated.resize((size, size), Image.Resampling.BILINEAR, box=box), dtype=np.uint8)
