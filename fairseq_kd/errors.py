"""The plugin's error types: bad inputs (raised by every part: data, teacher, decoding, diagnostics) and failed
external tools."""


class DataError(ValueError):
    """Bad input data; the message names the file, the line and the fix."""


class ToolError(RuntimeError):
    """An external program (KenLM's lmplz / build_binary) is missing or failed; the message says what to do."""
