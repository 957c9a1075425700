"""Real-world image files decode to what a person sees: rotation, colour models, odd sizes, formats."""

import io

import numpy as np
import pytest

from tests.builders import write_config, write_labels
from tests.conftest import run_tl

pytestmark = pytest.mark.tensorflow


def pattern(height=60, width=90):
    """A smooth, asymmetric picture, so rotation and colour mistakes show."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([255 * x / width, 255 * y / height, 128 + 0 * x], axis=-1).astype("uint8")


def save(path, pixels, mode="RGB", **options):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    image = image.convert(mode) if mode != "RGB" else image
    image.save(path, **options)
    return path


def with_exif_orientation(path, pixels, orientation):
    """Save ``pixels`` stored as a camera would for ``orientation``, with the EXIF tag to undo it."""
    from PIL import Image

    stored = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
    image = Image.fromarray(pixels).transpose(stored[orientation])
    exif = image.getexif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, exif=exif, quality=95)
    return path


def model_inputs(tmp_path, files, size=32):
    """The model inputs tl's pipeline makes of ``files`` (after indexing them like a run does)."""
    from plugins.datasets.imagenet_folder import index_split
    from plugins.keras.pipeline import make_dataset
    from tlcore.preprocessing import Preprocessing
    from tlcore.report import Reporter

    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    split, _ = index_split("training", tmp_path / "images", {"all": 0}, "labels.json", reporter)
    by_name = {}
    batches = make_dataset(split, Preprocessing("mobilenet_v2", size, 1 / 127.5, -1.0), 1)
    for (path, _), (batch, _) in zip(split.samples, batches, strict=True):
        by_name[path.name] = batch.numpy()[0]
    return by_name, reporter.err.getvalue()


def test_unusual_but_valid_images_decode_like_the_upright_rgb_original(tmp_path):
    from PIL import Image

    folder = tmp_path / "images" / "all"
    pixels = pattern()
    save(folder / "upright.jpg", pixels, quality=95)
    for orientation in (3, 6, 8):
        with_exif_orientation(folder / f"exif_{orientation}.jpg", pixels, orientation)
    save(folder / "cmyk.jpg", pixels, mode="CMYK", quality=95)
    save(folder / "rgba.png", np.dstack([pixels, np.full(pixels.shape[:2], 255, "uint8")]))
    save(folder / "png_named.jpg", pixels, format="PNG")
    save(folder / "photo.webp", pixels, quality=95)
    big = np.asarray(Image.fromarray(pixels).resize((3000, 2000), Image.Resampling.BILINEAR))
    save(folder / "big.jpg", big, quality=90)
    inputs, warnings = model_inputs(tmp_path, None)
    assert warnings == ""
    upright = inputs["upright.jpg"]
    for name in ("exif_3.jpg", "exif_6.jpg", "exif_8.jpg", "cmyk.jpg", "rgba.png", "png_named.jpg",
                 "photo.webp", "big.jpg"):
        assert inputs[name].shape == (32, 32, 3)
        assert np.abs(inputs[name] - upright).mean() < 0.06, name


def test_grayscale_and_tiny_images_become_three_channel_inputs(tmp_path):
    folder = tmp_path / "images" / "all"
    save(folder / "gray.jpg", pattern(), mode="L")
    save(folder / "tiny.png", pattern(2, 3))
    inputs, _ = model_inputs(tmp_path, None)
    gray = inputs["gray.jpg"]
    assert gray.shape == (32, 32, 3) and np.allclose(gray[..., 0], gray[..., 1], atol=1e-5)
    assert inputs["tiny.png"].shape == (32, 32, 3) and -1 <= inputs["tiny.png"].min() <= inputs["tiny.png"].max() <= 1


def test_a_run_on_a_messy_real_world_folder_trains_and_skips_only_the_unusable(tmp_path):
    data = tmp_path / "data"
    pixels = pattern()
    for split, count in (("training", 3), ("validation", 1)):
        for i in range(count):
            save(data / split / "a" / f"gray_{i}.jpg", pixels, mode="L")
            with_exif_orientation(data / split / "b" / f"phone_{i}.jpg", pixels[::-1], 6)
            save(data / split / "b" / f"cmyk_{i}.jpg", pixels[:, ::-1], mode="CMYK")
    (data / "training" / "a" / "empty.jpg").write_bytes(b"")
    (data / "training" / "a" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (data / "training" / "b" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (data / "training" / "b" / "half.jpg").write_bytes((data / "training" / "b" / "cmyk_0.jpg").read_bytes()[:300])
    write_labels(data, {"a": 0, "b": 1})
    config = write_config(tmp_path, dataset_training_dir="data/training", dataset_validation_dir="data/validation",
                          output_dir="out", evaluate_result_dir="out", batch_size=2, input_tensor_size=32, epochs=1,
                          weights=None, mobilenet_alpha=0.35)
    result = run_tl("run", config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "skipped 2 unusable image(s)" in result.stderr
    assert "empty.jpg (empty file (0 bytes))" in result.stderr and "half.jpg (truncated JPEG" in result.stderr
    assert "ignoring 1 non-image file(s)" in result.stderr and "Thumbs.db" in result.stderr
    assert "9 training and 3 validation images" in result.stdout and "8 decoded with Pillow" in result.stdout
