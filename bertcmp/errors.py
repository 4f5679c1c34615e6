"""Errors a user can fix: each carries one line that names the bad key, file or value and what would be right."""


class BertcmpError(Exception):
    """An error caused by the user's input, reported as one line without a traceback."""


class ConfigError(BertcmpError):
    """A config value outside its allowed range."""


class DataError(BertcmpError):
    """A data source that is missing or does not hold what the config says."""


class ModelError(BertcmpError):
    """A model that cannot be loaded or does not fit the config."""


class TrainingError(BertcmpError):
    """Training that cannot go on, such as a loss that became NaN or infinite."""
