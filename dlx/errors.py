"""Errors a user can fix. `dlx.main` prints them as one line and exits non-zero."""


class UserError(Exception):
  """Bad input: the message says what was wrong and how to fix it."""


class ConfigError(UserError, ValueError):
  """A config field has a bad value."""


class DataNotFoundError(UserError, FileNotFoundError):
  """A dataset is not on disk and cannot be downloaded."""


class NonFiniteLossError(UserError, FloatingPointError):
  """Training produced a NaN or infinite loss."""
