"""The IMX500's target platform capabilities (TPC), which tell MCT how the chip quantizes.

MCT's own output (its logger, its tqdm bars) is quietened by the framework, like TensorFlow's: shown with
``--debug`` (:meth:`tlcore.frameworks.Framework.quieten`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tlcore.keys import ConfigKey

if TYPE_CHECKING:
    from tlcore.config import RunConfig

TPC_VERSIONS = ("1.0", "1.0_lut", "4.0", "4.1", "5.0")
"""The IMX500 target platform capabilities of edge-mdt-tpc 1.3 (Sony's converter 3.18 converts all of them)."""

TPC_VERSION = ConfigKey("tpc_version", "string", default="4.0", choices=TPC_VERSIONS, affects_model=False,
                        help="IMX500 target platform capabilities: 1.0 for converter 3.14+, 4.0 (and 4.1) for 3.16+, "
                             "5.0 for 3.17+")
"""Read by every framework's quantizer (they return it from ``tl_config_keys``)."""


def target_platform(config: RunConfig) -> Any:
    """The TPC of ``config.options["tpc_version"]`` from Sony's edge-mdt-tpc, for MCT's quantizers."""
    from edgemdt_tpc import get_target_platform_capabilities

    return get_target_platform_capabilities(tpc_version=config.options["tpc_version"], device_type="imx500")

