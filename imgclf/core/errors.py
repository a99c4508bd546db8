"""User-facing errors.

Every error a user can cause (a bad config, a bad file, a data set the pipeline
cannot split) is an :class:`ImgclfError`: its message names the file, key or
value at fault and says what to do. Scripts print it without a traceback.
"""

from __future__ import annotations


class ImgclfError(Exception):
    """An error caused by the user's input, with a hint on how to fix it.

    Args:
        message: What is wrong, naming the file, key or value.
        hint: What the user should do about it.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  What to do: {self.hint}"
        return self.message


class ConfigError(ImgclfError):
    """The configuration does not match its schema."""


class DataValidationError(ImgclfError):
    """Data validation found errors that stop the pipeline."""


class SplitError(ImgclfError):
    """The data cannot be split as configured, or a split leaks."""
