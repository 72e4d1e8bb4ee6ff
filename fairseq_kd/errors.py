"""The plugin's error type for bad inputs, raised by every part (data, teacher, decoding, diagnostics)."""


class DataError(ValueError):
    """Bad input data; the message names the file, the line and the fix."""
