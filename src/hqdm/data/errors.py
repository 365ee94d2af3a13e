"""Named exceptions for dataset problems, so callers can tell "absent" from "broken"."""


class DatasetError(Exception):
    """Base class of every dataset loading problem."""


class DatasetNotFoundError(DatasetError):
    """The dataset files are not in any of the places searched."""


class CorruptDatasetError(DatasetError):
    """A dataset file exists but is truncated, malformed or has the wrong content."""
