"""Errors a user can fix: scripts print them as one line and exit with code 2."""


class TLHubError(Exception):
    """A problem with the user's input (a flag, a path, a dataset), not a bug in tl_hub."""


class ConfigError(TLHubError, ValueError):
    """A configuration value out of range or of the wrong kind."""


class DatasetError(TLHubError):
    """A dataset that cannot be found, reached or used."""


class ImageError(TLHubError):
    """An input image that cannot be read: not an image, truncated, empty or too large."""
