"""The IMX500's target platform capabilities (TPC), which tell MCT how the chip quantizes."""


def target_platform(config):
    """The TPC of ``config["tpc_version"]`` from Sony's edge-mdt-tpc, for MCT's quantizers."""
    from edgemdt_tpc import get_target_platform_capabilities

    return get_target_platform_capabilities(tpc_version=config.tpc_version, device_type="imx500")


def quiet_mct():
    """MCT reports through tqdm bars and its own logger; tl shows its own progress instead."""
    import logging
    import os

    os.environ.setdefault("TQDM_DISABLE", "1")  # read by tqdm when MCT imports it
    logging.getLogger("Model Compression Toolkit").setLevel(logging.ERROR)
