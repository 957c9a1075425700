"""The IMX500's target platform capabilities (TPC), which tell MCT how the chip quantizes.

MCT's own output (its logger, its tqdm bars) is quietened by the framework, like TensorFlow's: shown with
``--debug`` (:meth:`tlcore.frameworks.Framework.quieten`)."""


def target_platform(config):
    """The TPC of ``config["tpc_version"]`` from Sony's edge-mdt-tpc, for MCT's quantizers."""
    from edgemdt_tpc import get_target_platform_capabilities

    return get_target_platform_capabilities(tpc_version=config.tpc_version, device_type="imx500")

