"""bertcmp: fine-tune and compare BERT and ModernBERT for text classification, as one Hydra sweep."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bertcmp")  # pyproject.toml holds the number
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"


def load_classifier(path, device=None, precision="auto"):
    """A completed run's best model, ready to classify new texts: `load_classifier(run_dir).predict(texts)`.

    Imported on first use, so that `import bertcmp` (and the comparison, which never needs torch) stays light."""
    from bertcmp.predict import load_classifier as load

    return load(path, device, precision)
