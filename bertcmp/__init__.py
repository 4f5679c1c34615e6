"""bertcmp: fine-tune and compare BERT and ModernBERT for text classification, as one Hydra sweep."""

__version__ = "0.1.0"
