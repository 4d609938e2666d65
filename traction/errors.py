"""Error types. Every error a user can cause is a ``TractionError`` with a one-line message
that names the input and the reason; the command line prints it without a traceback."""


class TractionError(Exception):
    """Base class: bad input, bad config, missing or corrupt files."""


class InvalidTrajectories(TractionError, ValueError):
    """Trajectory arrays with wrong shapes, non-finite values or impossible sizes."""


class ConfigError(TractionError, ValueError):
    """Unknown config keys, values of the wrong type, inconsistent settings."""


class CheckpointError(TractionError):
    """A checkpoint that is missing, unreadable, or does not match the model."""


class StoreError(TractionError):
    """A trajectory store that is missing, half-written or corrupt."""


class CorruptRecord(StoreError):
    """A record whose bytes do not match the checksum in its manifest entry."""


class VideoError(TractionError):
    """A video that cannot be opened or decoded, or has unusable dimensions."""


class WeightsNotFound(TractionError, FileNotFoundError):
    """Model weights that are neither on disk nor downloadable."""
