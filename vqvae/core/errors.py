"""User-facing errors.

Anything a user can cause (a wrong path, a bad flag, a corrupt file) raises a
subclass of :class:`VQVAEError`. The CLI prints such errors as one line and
exits with status 2; everything else is a bug and keeps its traceback.
"""


class VQVAEError(Exception):
    """An error caused by the user's input, printed without a traceback."""


class ConfigError(VQVAEError):
    """An unknown config key, a value of the wrong type, or one out of range."""


class DataError(VQVAEError):
    """A missing, unknown, truncated or corrupt dataset, image or array."""


class CheckpointError(VQVAEError):
    """A missing, truncated, foreign or mismatched run directory."""


class TrainingDiverged(VQVAEError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def require(checks) -> None:
    """Raise a :class:`ConfigError` with the message of the first ``(ok, message)`` pair whose ``ok`` is false:
    the config dataclasses' ``validate`` methods list their checks and call this."""
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
