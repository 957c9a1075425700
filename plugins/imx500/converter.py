"""Sony's IMX500 converter: the exported quantized model becomes ``packerOut.zip`` for the device.

``imxconv-tf`` converts a Keras model and ``imxconv-pt`` an ONNX model; both need
Java 17 or later. Without them, tl still quantizes and exports, and says in one
line what to install.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tlcore.errors import ModelError
from tlcore.hookspecs import hookimpl
from tlcore.keys import ConfigKey
from tlcore.quantization import Conversion

if TYPE_CHECKING:
    from tlcore.config import RunConfig
    from tlcore.report import Reporter

TL_FRAMEWORK = ("keras", "torch")
CONVERTERS = {"keras": "imxconv-tf", "torch": "imxconv-pt"}
INSTALL = "pip install -e '.[imx500]' (Sony's edge-mdt bundle)"
JAVA_INSTALL = "install Java 17 or later (Debian/Ubuntu: sudo apt install openjdk-17-jre-headless)"
KEPT = ("packerOut.zip", "dnnParams.xml", "*.pbtxt", "*_MemoryReport.json")
NEXT_STEP = ("on a Raspberry Pi with the AI Camera: sudo apt install imx500-tools && imx500-package -i packerOut.zip "
             "-o network/ (gives network/network.rpk); for AITRIOS, import packerOut.zip in the Console")
STAGES = (
    ("Converting", "reading the model"),
    ("Starting SDSPconv", "compiling"),
    ("ConvFe conversion finished", "generating the program"),
    ("Converter Backend successfully completed", "packing"),
)


def find_converter(name: str) -> Any:
    """The converter beside this Python (a venv's bin, which may not be on PATH), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def java_version() -> Any:
    """The major version of ``java`` on PATH, or None when there is none."""
    java = shutil.which("java")
    if java is None:
        return None
    try:
        output = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major  # "1.8" is Java 8


def memory_summary(report: Path) -> Any:
    """``(fits, "3.89 MB of 8.00 MB (49%)")`` from the converter's memory report."""
    data = json.loads(Path(report).read_text()).get("Memory Report", {})
    used, total, share = data.get("Memory Usage"), data.get("Total Memory Available On Chip"), data.get("Memory Utilization")
    text = f"{used} of {total}" + (f" ({share})" if share else "") if used and total else ""
    return data.get("Fit In Chip"), text


@hookimpl
def tl_config_keys() -> list[ConfigKey]:
    return [ConfigKey("imx500_input_persistency", "boolean", default=True, affects_model=False,
                      help="keep the input image readable on the device; false saves chip memory for a large model")]


@hookimpl(trylast=True)
def tl_convert(model_file: Path, path: Path, config: RunConfig, reporter: Reporter) -> Conversion | None:
    tool = CONVERTERS[config.framework]
    executable = find_converter(tool)
    if executable is None:
        return Conversion(converted=False, reason=f"Sony's converter {tool} is not installed; {INSTALL}")
    java = java_version()
    if java is None or java < 17:
        found = "is not installed" if java is None else f"is Java {java}"
        return Conversion(converted=False, reason=f"the IMX500 converter needs Java 17 or later, and java {found}; "
                                                  f"{JAVA_INSTALL}")
    output = path / ".converter-output"  # the converter refuses an existing folder
    command = [executable, "-i", str(model_file), "-o", str(output), "--logger-format", "json"]
    if not config.options["imx500_input_persistency"]:
        command.append("--no-input-persistency")
    errors, version = run_converter(command, tool, reporter)
    reports = sorted(output.glob("*_MemoryReport.json"))
    fits, memory = memory_summary(reports[0]) if reports else (None, "")
    if errors is not None:
        if fits is False:
            raise ModelError(f"the model does not fit in the IMX500's memory ({memory}); set "
                             '"imx500_input_persistency": false, or use a smaller input_tensor_size or base_model (`tl models`)')
        raise ModelError(f"{tool} could not convert the quantized model: {errors}")
    files = []
    for pattern in KEPT:
        for file in output.glob(pattern):
            os.replace(file, path / file.name)
            files.append(file.name)
    shutil.rmtree(output, ignore_errors=True)
    return Conversion(converted=True, files=tuple(sorted(files)), fits=fits, memory=memory, next_step=NEXT_STEP,
                      tool=f"{tool} {version}".strip())


def run_converter(command: list[str], tool: str, reporter: Reporter) -> Any:
    """Run the converter with live stages; return ``(None or its error, its version)``.

    It runs in its own process group, so that Ctrl-C or SIGTERM stops it (and its Java)
    before tl reports the interruption.
    """
    lines, version = [], ""
    with reporter.activity(f"Converting for the IMX500 with {tool}") as activity:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        try:
            assert process.stdout is not None  # stdout=PIPE
            for raw in process.stdout:
                if reporter.debug:
                    reporter.info(raw.rstrip())
                message, level = parse(raw)
                lines.append((level, message))
                version = version or _version(message)
                for start, stage in STAGES:
                    if message.startswith(start) or start in message:
                        activity.stage(stage)
            code = process.wait()
        except BaseException:
            _stop(process)
            raise
    if code == 0:
        return None, version
    errors = [message for level, message in lines if level == "ERROR"] or [message for _, message in lines[-3:]]
    if code == 127:
        return f"Java could not be started ({errors[-1]}); {JAVA_INSTALL}", version
    return (f"{errors[-1]} (exit code {code})" if errors else f"exit code {code}"), version


def parse(raw: str) -> Any:
    """``(message, level)`` of one converter log line (JSON, or text from the Java part)."""
    raw = raw.strip()
    try:
        record = json.loads(raw)
        return one_line(str(record.get("message", raw))), str(record.get("log.level", "")).upper()
    except ValueError:
        level = "ERROR" if re.search(r"\bERROR\b", raw) else ""
        return raw, level


def one_line(message: str) -> str:
    """The converter's message on one line: its HTML line breaks, tabs and rules of dashes become "; "."""
    parts = re.split(r"<br\s*/?>|\n|-{5,}", message)
    return "; ".join(part.strip() for part in parts if part.strip())


def _version(message: str) -> Any:
    match = re.search(r"Running version (\S+)", message)
    return match.group(1) if match else ""


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
