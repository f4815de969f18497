"""``python -m export SRC_DIR OUT_DIR``: parse flags, run :func:`export.pipeline.export_model`.

Exit codes: 0 exported (a variant not explicitly asked for may have been left out, as the
output says), 1 the export failed (fp32 or an explicitly requested variant failed its
parity gate, or a runtime error), 2 bad input (not a checkpoint, unsupported architecture,
bad flag, output directory exists without ``--force``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from export.evalset import DEFAULT_MARGIN
from server.manifest import POOLINGS, VARIANTS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a Hugging Face / sentence-transformers checkpoint to a parity-gated ONNX model "
        "directory.",
    )
    parser.add_argument(
        "source", type=Path, metavar="SRC_DIR", help="checkpoint directory (config.json + weights)"
    )
    parser.add_argument("out", type=Path, metavar="OUT_DIR", help="model directory to create")
    parser.add_argument(
        "--variants",
        help=f"comma-separated precisions from {','.join(VARIANTS)} (default fp32,int8); "
        "when given, each listed variant must pass its gate or the export fails; by default "
        "an int8 that fails is left out with a message",
    )
    parser.add_argument("--pooling", choices=POOLINGS, help="override the pooling read from the checkpoint")
    parser.add_argument(
        "--max-length", type=int, help="override the max input length in tokens (special tokens included)"
    )
    parser.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="override whether vectors are unit length by default "
        "(default: whether the checkpoint has a Normalize module)",
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--name", help="model name in the manifest (default: OUT_DIR's name)")
    parser.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    parser.add_argument(
        "--eval-data",
        type=Path,
        metavar="PATH",
        help="your held-out retrieval set: a JSONL file of {query, passage} pairs, or a directory with "
        "heldout.jsonl (python -m finetune's dataset or training output); every variant is scored on it "
        "(nDCG@10, recall@10 at each width) and a reduced precision that loses more than --eval-margin "
        "nDCG@10 to fp32 at any width is refused",
    )
    parser.add_argument(
        "--eval-margin",
        type=float,
        default=DEFAULT_MARGIN,
        help=f"nDCG@10 a reduced precision may lose to fp32 on --eval-data (default {DEFAULT_MARGIN})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Checkpoints are local directories; never let transformers reach for the Hub. The
    # variable must be set before transformers is first imported, hence the late imports.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # noqa: TID251 - this is the package's CLI edge
    from export.errors import run_to_exit_code
    from export.options import DEFAULT_VARIANTS, ExportOptions, preflight

    if args.variants is None:
        variants, required = DEFAULT_VARIANTS, frozenset({"fp32"})
    else:
        variants = tuple(dict.fromkeys(v.strip() for v in args.variants.split(",") if v.strip()))
        required = frozenset(variants)
    options = ExportOptions(
        variants=variants,
        required=required,
        pooling=args.pooling,
        max_length=args.max_length,
        normalize=args.normalize,
        opset=args.opset,
        force=args.force,
        name=args.name,
        eval_data=args.eval_data,
        eval_margin=args.eval_margin,
    )

    def export() -> None:
        # Bad input is refused in a second, before torch and transformers are imported.
        preflight(args.source, args.out, options)
        from export.pipeline import export_model

        export_model(args.source, args.out, options)

    return run_to_exit_code(export)


if __name__ == "__main__":
    sys.exit(main())
