"""The IMX500 target: Sony's target platform capabilities for MCT, the layer check before training,
and Sony's converter (``imxconv-tf`` / ``imxconv-pt``), for the keras and torch frameworks."""
