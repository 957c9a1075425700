"""After training, for the IMX500: quantizing, exporting (also as TFLite) and converting."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from tlcore.hookspecs.markers import hookspec

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.preprocessing import Preprocessing
    from tlcore.quantization import Calibration, Conversion
    from tlcore.report import Reporter


@hookspec(firstresult=True)
def tl_quantize(model: Any, calibration: Calibration, preprocessing: Preprocessing, config: RunConfig,
                reporter: Reporter) -> Any:
    """*Answer hook, framework step* — first non-None result wins. Quantize the float classifier for the
    IMX500 (`tl quantize`, or `tl run` with `"quantize": true`). The quantized model takes what the
    device gives it, raw RGB pixels 0-255, so the implementation puts the normalisation of
    `preprocessing` inside the model. The built-in `keras.quantize` and `torch.quantize` run MCT's
    post-training quantization (or GPTQ) with Sony's target platform capabilities (`tpc_version`).

    - `model` (`Any`): the float classifier, from `tl_train` or `tl_load_model`.
    - `calibration` (`tlcore.quantization.Calibration`): call it for a fresh iterator of float32
      batches of raw pixels in the framework's layout (training images, `quantization_images` of
      them); `len(calibration)` is the number of batches per pass; `calibration.stage(text)` says on
      the progress line what the quantizer is doing.
    - `preprocessing` (`Preprocessing`): how the model was trained to see pixels.
    - `config` (`RunConfig`): `quantization_method`, `gptq_epochs`, `tpc_version`.
    - `reporter` (`Reporter`): for messages.
    - Returns: the quantized model, in the form `tl_export_quantized` takes.

    ```python
    TL_FRAMEWORK = "keras"

    @hookimpl
    def tl_quantize(model, calibration, preprocessing):
        import model_compression_toolkit as mct
        raw = with_normalisation_inside(model, preprocessing)
        quantized, _ = mct.ptq.keras_post_training_quantization(raw, lambda: ([batch] for batch in calibration()))
        return quantized
    ```
    """


@hookspec(firstresult=True)
def tl_export_quantized(model: Any, path: Path, config: RunConfig, reporter: Reporter) -> Path | None:
    """*Answer hook, framework step* — first non-None result wins. Write the quantized model into
    `path`, the staging folder of `output_dir/imx500`, in the form the device's converter reads
    (keras: MCT's `.keras`; torch: MCT's ONNX). `tl_load_model` must load it back from that folder:
    the core evaluates the exported file, not the model in memory.

    - `model` (`Any`): the result of `tl_quantize`.
    - `path` (`pathlib.Path`): the staging folder.
    - `config` (`RunConfig`): the configuration.
    - `reporter` (`Reporter`): for messages and activity.
    - Returns: the `pathlib.Path` of the exported file.

    ```python
    @hookimpl
    def tl_export_quantized(model, path):
        import model_compression_toolkit as mct
        mct.exporter.keras_export_model(model=model, save_model_path=str(path / "model_quantized.keras"))
        return path / "model_quantized.keras"
    ```
    """


@hookspec(firstresult=True)
def tl_export_tflite(model: Any, calibration: Calibration, preprocessing: Preprocessing, path: Path,
                     reporter: Reporter) -> Mapping[str, Path] | None:
    """*Answer hook, framework step* — first non-None result wins. Write TFLite models of the float
    classifier for targets other than the IMX500 (`"tflite": true`, and the SDK quantize
    notebook's configuration). The built-in `keras.tflite` writes `model.tflite` (float, the
    training preprocessing's input) and `model_quantized.tflite` (full int8 with the preprocessing
    inside: uint8 raw pixels in, float scores out). `tl_load_model` loads either file to evaluate it.

    - `model` (`Any`): the float classifier.
    - `calibration` (`tlcore.quantization.Calibration`): raw-pixel batches of training images.
    - `preprocessing` (`Preprocessing`): how the model was trained to see pixels.
    - `path` (`pathlib.Path`): a staging folder.
    - `reporter` (`Reporter`): for the activity line.
    - Returns: `{"float": path, "quantized": path}` of the two files.

    ```python
    @hookimpl
    def tl_export_tflite(model, path):
        import tensorflow as tf
        (path / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
        ...
        return {"float": path / "model.tflite", "quantized": path / "model_quantized.tflite"}
    ```
    """


@hookspec(firstresult=True)
def tl_convert(model_file: Path, path: Path, config: RunConfig, reporter: Reporter) -> Conversion | None:
    """*Answer hook* — first non-None result wins. Turn the exported model into the device's package.
    The built-in `imx500.converter` (keras and torch) runs Sony's `imxconv-tf` or `imxconv-pt`
    with live stages, keeps `packerOut.zip` and the memory report, and says whether the model fits
    in the chip. Without the converter or without Java it answers `converted=False` with what to
    install; the quantized model is still published. A conversion that fails is an error.

    - `model_file` (`pathlib.Path`): the file `tl_export_quantized` wrote.
    - `path` (`pathlib.Path`): the staging folder; put the package's files here.
    - `config` (`RunConfig`): `imx500_input_persistency` and the rest.
    - `reporter` (`Reporter`): for the activity line.
    - Returns: a `tlcore.quantization.Conversion(converted, files, fits, memory, next_step, reason, tool)`.

    ```python
    from tlcore.quantization import Conversion

    @hookimpl
    def tl_convert(model_file, path):
        subprocess.run(["my-npu-compiler", str(model_file), "-o", str(path / "model.bin")], check=True)
        return Conversion(converted=True, files=("model.bin",), next_step="copy model.bin to the board")
    ```
    """
