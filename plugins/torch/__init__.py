"""The PyTorch framework pack (``"framework": "torch"``): torch + torchvision, installed with ``.[torch]``.

Every module here serves only the torch framework (``TL_FRAMEWORK``) and imports
torch inside hook bodies only.
"""
