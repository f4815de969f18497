"""Why an export stops, and the exit code each reason maps to.

::

    ExportError                 base; ``exit_code`` 1 (a runtime failure)
    ├── UsageError              bad input the user can fix: not a checkpoint, unsupported
    │                           architecture, bad flag, output directory exists; exit 2
    └── ParityError             a variant that had to ship failed its parity gate; exit 1

Every message says what is wrong and what to do about it.
"""

from __future__ import annotations


class ExportError(Exception):
    """The export failed; nothing was written to the output directory."""

    exit_code = 1


class UsageError(ExportError):
    """The input (checkpoint directory, flags, output path) cannot be exported as given."""

    exit_code = 2


class ParityError(ExportError):
    """A required variant does not match the PyTorch reference closely enough to ship."""

    exit_code = 1
