"""Why an export stops, and the exit code each reason maps to.

::

    ExportError                 base; ``exit_code`` 1 (a runtime failure)
    ├── UsageError              bad input the user can fix: not a checkpoint, unsupported
    │                           architecture, bad flag, output directory exists; exit 2
    └── ParityError             a variant that had to ship failed its parity gate; exit 1

Every message says what is wrong and what to do about it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class ExportError(Exception):
    """The export failed; nothing was written to the output directory."""

    exit_code = 1


class UsageError(ExportError):
    """The input (checkpoint directory, flags, output path) cannot be exported as given."""

    exit_code = 2


class ParityError(ExportError):
    """A required variant does not match the PyTorch reference closely enough to ship."""

    exit_code = 1


def run_to_exit_code(action: Callable[[], object]) -> int:
    """Run an export for a CLI: 0 on success, the error's exit code (message on stderr)
    on an ExportError, 130 on Ctrl-C. Shared by ``python -m export`` and ``export.shipped``."""
    try:
        action()
    except ExportError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("export interrupted; nothing was written", file=sys.stderr)
        return 130
    return 0
