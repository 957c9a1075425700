"""The Keras framework pack (``"framework": "keras"``, the default): tf.keras of TensorFlow 2.15.

Every module here serves only the keras framework (``TL_FRAMEWORK``) and imports
TensorFlow inside hook bodies only.
"""
