"""bertcmp: fine-tune and compare BERT and ModernBERT for text classification, as one Hydra sweep."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bertcmp")  # pyproject.toml holds the number
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"
