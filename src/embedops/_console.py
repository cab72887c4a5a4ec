"""Consoles and library-noise control shared by every layer (the CLI, training progress, the demo).

Quiet by default: third-party INFO/DEBUG logs and their weight-loading / `Batches:` bars are hidden, so our own
output (one progress bar per long step, results) stays readable. `embedops -v` turns them back on; `embedops -q`
hides our progress bars too.
"""

from __future__ import annotations

import logging
import os
import sys

from rich.console import Console

console = Console()
err_console = Console(stderr=True)

# Loggers of the libraries we drive; their INFO lines ("Load pretrained SentenceTransformer", "Use pytorch device")
# are noise in a normal run.
NOISY_LOGGERS = ("sentence_transformers", "transformers", "huggingface_hub", "torch", "onnxruntime", "optimum",
                 "nncf", "openvino", "faiss", "urllib3", "filelock", "httpx", "datasets", "accelerate", "PIL",
                 "matplotlib", "bm25s", "numexpr", "fsspec")

_state = {"verbose": False, "quiet": False}


def set_verbosity(*, verbose: bool = False, quiet: bool = False) -> None:
    """Choose the output level for this process: verbose shows library logs and bars, quiet hides our bars too."""
    _state["verbose"], _state["quiet"] = verbose, quiet and not verbose
    if verbose:
        os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    root = logging.getLogger()
    if verbose and not root.handlers:
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for handler in root.handlers:
        # A library that sets its own logger to DEBUG (bm25s does, on import) still reaches our handler: the
        # handler's level is what keeps a normal run quiet.
        handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    if "transformers" in sys.modules:  # else quiet_libraries() runs when a model loads (importing it is slow)
        quiet_libraries()


def is_verbose() -> bool:
    """True after `embedops -v`."""
    return _state["verbose"]


def is_quiet() -> bool:
    """True after `embedops -q`: no progress bars or spinners."""
    return _state["quiet"]


def quiet_libraries() -> None:
    """Silence library chatter (weight-loading bars, INFO logs) unless verbose; called before a model loads."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    verbose = _state["verbose"]
    if not verbose:
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        for name in NOISY_LOGGERS:
            logger = logging.getLogger(name)
            if logger.level == logging.NOTSET or logger.level < logging.WARNING:
                logger.setLevel(logging.WARNING)
    try:
        import transformers

        if verbose:
            transformers.logging.set_verbosity_debug()
            transformers.logging.enable_progress_bar()
        else:
            transformers.logging.set_verbosity_error()
            transformers.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    try:
        import huggingface_hub.utils as hub_utils

        if verbose:
            hub_utils.enable_progress_bars()
        else:
            hub_utils.disable_progress_bars()
    except (ImportError, AttributeError):  # pragma: no cover
        pass
