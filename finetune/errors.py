"""The errors ``python -m finetune`` reports, and the exit code each maps to.

::

    FinetuneError            anything the CLI turns into a one-line message
    ├── UsageError           bad arguments or input files: fix the command or the data (exit 2)
    └── RunError             a run failed while working: a server did not start, a request
                             failed, a checkpoint could not be written (exit 1)

Every message says what is wrong and what to do about it.
"""

from __future__ import annotations


class FinetuneError(Exception):
    """Base of every error the finetune CLI reports without a traceback."""

    exit_code = 1


class UsageError(FinetuneError):
    """The arguments or the input data are wrong; the message says how to fix them."""

    exit_code = 2


class RunError(FinetuneError):
    """Work that was correctly requested failed (server, network, disk)."""

    exit_code = 1
