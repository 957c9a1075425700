"""The core's image decoding, batching and augmentation, used by every framework: what a person
sees in a file (rotation, colour models, odd sizes, formats) is what the model gets."""

import io
import json

import numpy as np
import pytest

from tests.builders import write_labels
from tests.conftest import JPEG_SHELL, Project
from tlcore.dataset import Split
from tlcore.errors import DatasetError
from tlcore.images import decode
from tlcore.loader import Augmentation, ImageBatches
from tlcore.preprocessing import PRESETS, Preprocessing


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


def preset(name, size=32, **changes):
    mean, std = PRESETS[name]
    return Preprocessing(name=name, size=size, mean=mean, std=std, **changes)


def model_inputs(tmp_path, preprocessing=None):
    """The model inputs tl makes of the files under ``tmp_path/images`` (indexed like a run does)."""
    from tlplugins.datasets.imagenet_folder import index_split
    from tlcore.report import Reporter

    reporter = Reporter(stream=io.StringIO(), err=io.StringIO())
    split, _ = index_split("training", tmp_path / "images", {"all": 0}, "labels.json", reporter)
    batches = ImageBatches(split, preprocessing or preset("mobilenet_v2"), 1)
    by_name = {split.samples[int(batch.indices[0])][0].name: batch.images[0] for batch in batches}
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
    save(folder / "palette.gif", pixels, mode="P")
    save(folder / "sixteen_bit.png", (pixels[..., 0].astype(np.uint16) * 257), mode="I;16")
    big = np.asarray(Image.fromarray(pixels).resize((3000, 2000), Image.Resampling.BILINEAR))
    save(folder / "big.jpg", big, quality=90)
    inputs, warnings = model_inputs(tmp_path)
    assert warnings == ""
    upright = inputs["upright.jpg"]
    for name in ("exif_3.jpg", "exif_6.jpg", "exif_8.jpg", "cmyk.jpg", "rgba.png", "png_named.jpg",
                 "photo.webp", "palette.gif", "big.jpg"):
        assert inputs[name].shape == (32, 32, 3)
        assert np.abs(inputs[name] - upright).mean() < 0.06, name
    red = inputs["sixteen_bit.png"][..., 0]
    assert np.abs(red - upright[..., 0]).mean() < 0.06, "16-bit pixels are scaled to 8 bits, not clipped"


def test_a_large_jpeg_is_decoded_at_reduced_scale_with_the_same_result(tmp_path):
    """A 12-megapixel JPEG is decoded at 1/8 scale inside the decoder, yet resizes to what the full decode gives."""
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    photo = np.asarray(Image.fromarray(small).resize((4000, 3000), Image.Resampling.BICUBIC))
    path = save(tmp_path / "photo.jpg", photo, quality=92)
    with Image.open(path) as image:
        full = np.asarray(image.convert("RGB").resize((96, 96), Image.Resampling.BILINEAR), dtype=np.float32)
    fast = decode(str(path), 96).astype(np.float32)
    assert fast.shape == (96, 96, 3)
    assert np.abs(fast - full).mean() < 2.0, "within interpolation differences, in 0-255 pixel values"


def test_grayscale_and_tiny_images_become_three_channel_inputs(tmp_path):
    folder = tmp_path / "images" / "all"
    save(folder / "gray.jpg", pattern(), mode="L")
    save(folder / "tiny.png", pattern(2, 3))
    inputs, _ = model_inputs(tmp_path)
    gray = inputs["gray.jpg"]
    assert gray.shape == (32, 32, 3) and np.allclose(gray[..., 0], gray[..., 1], atol=1e-5)
    assert inputs["tiny.png"].shape == (32, 32, 3) and -1 <= inputs["tiny.png"].min() <= inputs["tiny.png"].max() <= 1


@pytest.fixture
def mixed_images(tmp_path):
    """A 40x40 RGB JPEG, a grayscale JPEG and an RGBA PNG, each half black and half white."""
    from PIL import Image

    half = np.zeros((40, 40), dtype=np.uint8)
    half[:, 20:] = 255
    images = {
        "rgb.jpg": Image.fromarray(np.stack([half] * 3, axis=-1)),
        "gray.jpg": Image.fromarray(half, mode="L"),
        "rgba.png": Image.fromarray(np.stack([half] * 3 + [np.full_like(half, 255)], axis=-1), mode="RGBA"),
    }
    for name, image in images.items():
        image.save(tmp_path / name)
    return Split("validation", tmp_path, tuple((tmp_path / name, label) for label, name in enumerate(images)))


@pytest.mark.parametrize("name, low, high", [("mobilenet_v2", -1.0, 1.0), ("unit", 0.0, 1.0), ("none", 0.0, 255.0),
                                              ("imagenet", -2.2, 2.7)])
def test_batches_are_rgb_inputs_in_the_preprocessing_range(mixed_images, name, low, high):
    """JPEG, grayscale JPEG and PNG all become size x size x 3 float32 inputs spanning the range the preset names."""
    batches = list(ImageBatches(mixed_images, preset(name), batch_size=2))

    assert [batch.images.shape for batch in batches] == [(2, 32, 32, 3), (1, 32, 32, 3)]
    assert all(batch.images.dtype == np.float32 for batch in batches)
    images = np.concatenate([batch.images for batch in batches])
    labels = np.concatenate([batch.labels for batch in batches])
    assert labels.tolist() == mixed_images.label_ids
    tolerance = 0.02 * (high - low)
    assert images.min() >= low - tolerance and images.max() <= high + tolerance
    assert images.min() < low + 0.15 * (high - low) and images.max() > high - 0.15 * (high - low)
    gray = images[1]
    assert np.allclose(gray[..., 0], gray[..., 1]) == (name != "imagenet"), "ImageNet's channels differ in mean/std"


def test_channels_first_and_bgr_are_the_same_pixels_rearranged(mixed_images):
    """NCHW (torchvision) and BGR (Caffe-style) models get the same numbers, laid out as they take them."""
    [nhwc] = ImageBatches(mixed_images, preset("unit"), batch_size=3)
    [nchw] = ImageBatches(mixed_images, preset("unit", layout="NCHW"), batch_size=3)
    [bgr] = ImageBatches(mixed_images, preset("unit", channel_order="BGR"), batch_size=3)
    assert nchw.images.shape == (3, 3, 32, 32) and nchw.images.flags["C_CONTIGUOUS"]
    assert np.array_equal(nchw.images, nhwc.images.transpose(0, 3, 1, 2))
    assert np.array_equal(bgr.images, nhwc.images[..., ::-1])


def test_per_channel_mean_and_std_are_applied_per_channel(tmp_path):
    colour = np.full((16, 16, 3), (200, 100, 50), dtype=np.uint8)
    split = Split("training", tmp_path, ((save(tmp_path / "c.png", colour), 0),))
    processing = Preprocessing("custom", 16, mean=(100, 100, 100), std=(50, 25, 10))
    [batch] = ImageBatches(split, processing, 1)
    assert np.allclose(batch.images[0, 0, 0], [(200 - 100) / 50, (100 - 100) / 25, (50 - 100) / 10])


def test_an_image_no_decoder_can_read_is_skipped_or_stops_the_iteration(tmp_path):
    good = save(tmp_path / "good.jpg", pattern())
    (tmp_path / "shell.jpg").write_bytes(JPEG_SHELL)
    split = Split("training", tmp_path, ((good, 0), (tmp_path / "shell.jpg", 1), (good, 0)))

    skipping = ImageBatches(split, preset("unit"), 2)
    batches = list(skipping)
    assert [batch.indices.tolist() for batch in batches] == [[0], [2]]
    assert [index for index, _ in skipping.undecodable] == [1]
    with pytest.raises(DatasetError, match=r"shell.jpg: this image cannot be decoded \(.*\); remove or replace it"):
        list(ImageBatches(split, preset("unit"), 2, bad_images="error"))


def test_augmentation_depends_on_seed_epoch_and_image_not_on_batching_or_threads(tmp_path):
    paths = [save(tmp_path / f"{i}.jpg", np.roll(pattern(), 7 * i, axis=1), quality=95) for i in range(6)]
    split = Split("training", tmp_path, tuple((path, 0) for path in paths))
    names = ("flip", "rotation", "zoom", "contrast", "brightness")

    def images(batch_size, workers, seed=3, epoch=1):
        batches = ImageBatches(split, preset("unit"), batch_size, workers=workers,
                               augmentation=Augmentation(names, seed, epoch))
        return np.concatenate([batch.images for batch in batches])

    plain = np.concatenate([batch.images for batch in ImageBatches(split, preset("unit"), 6)])
    first = images(2, 1)
    assert np.array_equal(first, images(4, 3)), "the same seed, epoch and image give the same augmentation"
    assert not np.array_equal(first, images(2, 1, epoch=2)), "every epoch draws anew"
    assert not np.array_equal(first, images(2, 1, seed=4))
    assert not np.array_equal(first, plain)
    assert first.min() >= 0 and first.max() <= 1


def test_a_run_on_a_messy_real_world_folder_trains_and_skips_only_the_unusable(tmp_path):
    data = tmp_path / "dataset"
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
    project = Project(tmp_path)
    result = project.run()
    assert result.exit_code == 0, result.output
    assert "skipped 2 unusable image(s)" in result.output
    assert "empty.jpg (empty file (0 bytes))" in result.output and "half.jpg (truncated JPEG" in result.output
    assert "ignoring 1 non-image file(s)" in result.output and "Thumbs.db" in result.output
    assert "9 training and 3 validation images" in result.output
    assert project.results()["num_images"] == 3


def test_a_configuration_can_give_its_own_mean_and_std(project):
    """A model trained elsewhere takes its own normalisation: given as mean/std, it is used and recorded."""
    result = project.run(config=project.write(preprocessing={"mean": [1, 2, 3], "std": [4, 5, 6]}))
    assert result.exit_code == 0, result.output
    saved = json.loads((project.root / "out" / "saved_model" / "preprocessing.json").read_text())
    assert (saved["mean"], saved["std"], saved["name"]) == ([1, 2, 3], [4, 5, 6], "custom")
    assert "scale" not in saved, "per-channel scaling has no single scale"


def test_images_decoded_ahead_are_taken_once_by_the_first_pass_with_the_same_inputs(tmp_path, monkeypatch):
    import tlcore.loader as loader

    paths = [save(tmp_path / f"{i}.jpg", np.roll(pattern(), 9 * i, axis=1), quality=95) for i in range(6)]
    (tmp_path / "shell.jpg").write_bytes(JPEG_SHELL)
    split = Split("training", tmp_path, tuple((path, i % 2) for i, path in enumerate([*paths, tmp_path / "shell.jpg"])))
    decoded = []
    monkeypatch.setattr(loader, "decode", lambda path, size: decoded.append(path) or decode(path, size))

    def inputs(size=32):
        batches = ImageBatches(split, preset("unit", size=size), 4)
        return np.concatenate([batch.images for batch in batches]), batches.undecodable

    expected, bad = inputs()
    assert len(expected) == 6 and [index for index, _ in bad] == [6]
    with loader.decoding_ahead(split.paths, 32) as ahead:
        ahead.join()
        assert ahead.decoded == 6, "every decodable image is ready before the pass; the broken one is not kept"
        decoded.clear()
        again, bad_again = inputs()
        assert np.array_equal(again, expected) and bad_again == bad, "the same inputs, the same image reported"
        assert decoded == [str(tmp_path / "shell.jpg")], "only the image that failed ahead is decoded again"
        assert ahead.decoded == 0, "each image is taken once"
        decoded.clear()
        inputs()
        assert len(decoded) == 7, "a second pass decodes"
    with loader.decoding_ahead(split.paths, 32, budget=2 * 32 * 32 * 3) as ahead:
        ahead.join()
        assert ahead.decoded == 2, "no more than the budget"
        decoded.clear()
        assert np.array_equal(inputs()[0], expected)
        assert len(decoded) == 5
    with loader.decoding_ahead(split.paths, 48) as ahead:
        ahead.join()
        decoded.clear()
        assert np.array_equal(inputs()[0], expected), "pixels of another size are not used"
        assert len(decoded) == 7
    decoded.clear()
    inputs()
    assert len(decoded) == 7, "outside the block nothing is decoded ahead"


def test_an_image_over_the_pixel_limit_is_skipped_but_a_large_jpeg_is_reduced_while_decoding(tmp_path, monkeypatch):
    """The limit counts the pixels the decoder would produce: a JPEG shrinks inside its decoder (1/8 here), a
    16-bit PNG cannot, so a PNG too large is skipped with the usual warning and a larger JPEG still used."""
    from PIL import Image

    from tlcore import images

    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", [100_000])
    Image.fromarray(np.full((400, 400), 40000, dtype=np.uint16)).save(tmp_path / "scan.png")
    Image.fromarray(np.zeros((800, 800, 3), np.uint8)).save(tmp_path / "photo.jpg")
    split = Split("training", tmp_path, ((tmp_path / "scan.png", 0), (tmp_path / "photo.jpg", 0)))

    batches = ImageBatches(split, preset("unit"), 2)
    assert [batch.indices.tolist() for batch in batches] == [[1]], "the 160,000-pixel PNG skipped, the JPEG used"
    [(index, reason)] = batches.undecodable
    assert index == 0 and "400x400 pixels, more than max_image_pixels (100,000)" in reason
