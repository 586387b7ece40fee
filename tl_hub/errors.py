"""Errors a user can fix: scripts print them as one line and exit with code 2."""


class TLHubError(Exception):
    """A problem with the user's input (a flag, a path, a dataset), not a bug in tl_hub."""


class ConfigError(TLHubError, ValueError):
    """A configuration value out of range or of the wrong kind.

    `field`, `value` and `expected` name what was wrong when one field was (the scripts reword the message
    with the flag that set it).
    """

    def __init__(self, message: str, field: str | None = None, value: object = None, expected: str = ""):
        super().__init__(message)
        self.field, self.value, self.expected = field, value, expected


class DatasetError(TLHubError):
    """A dataset that cannot be found, reached or used."""


class ImageError(TLHubError):
    """An input image that cannot be read: not an image, truncated, empty or too large."""


class TrainingDiverged(TLHubError):
    """The loss stopped being finite: the settings (most often the learning rate) do not train this model."""


class RequestRefused(TLHubError):
    """A request the Space cannot serve (no model, a model that does not load, an unreadable upload)."""
