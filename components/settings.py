"""Every limit and path of the app in one place; import this before gradio.

Importing sets `GRADIO_ANALYTICS_ENABLED=False` and points `GRADIO_TEMP_DIR` (uploads, gradio's own
files) and `MPLCONFIGDIR` into one per-process temporary directory, `TEMP_ROOT`, so the app writes
nothing elsewhere. `TEMP_ROOT` is removed at exit; `prune_temp()` deletes files older than
`MAX_FILE_AGE_S` while the server runs.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value in (None, "") else float(value)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


REPO_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = REPO_ROOT / "assets"

# ---- models ----
DEFAULT_PRETRAIN_DIR = ASSETS_DIR / "tvlt-small-pretrain"  # MAE, attention, retrieval
DEFAULT_SENTIMENT_DIR = ASSETS_DIR / "tvlt-small-sentiment"  # sentiment view
MODEL_CARD_PATH = ASSETS_DIR / "MODEL_CARD.md"
EXAMPLES_DIR = ASSETS_DIR / "examples"
CHECKPOINT_ENV = "TVLT_CHECKPOINT"  # a local directory, an original .ckpt or a hub id
SENTIMENT_CHECKPOINT_ENV = "TVLT_SENTIMENT_CHECKPOINT"
MAX_LOADED_MODELS = 2  # checkpoints kept in memory besides the default ones
# Whether visitors may load server-side paths from the model picker (hub ids and the bundled models always
# work). Off on Hugging Face Spaces by default: a public page must not probe or load the server's files.
PICKER_LOCAL_PATHS = os.environ.get("TVLT_PICKER_LOCAL_PATHS", "0" if os.environ.get("SPACE_ID") else "1") == "1"

# ---- media limits ----
MAX_UPLOAD_MB = _env_int("TVLT_MAX_UPLOAD_MB", 50)
MAX_WINDOW_S = _env_float("TVLT_MAX_WINDOW_S", 30.0)  # longest start..start+duration window decoded
DEFAULT_WINDOW_S = 10.0
MAX_MEDIA_S = _env_float("TVLT_MAX_MEDIA_S", 3600.0)  # longer files are refused (seeking keeps long ones cheap)
MAX_START_S = MAX_MEDIA_S  # a window may start anywhere in an accepted file
MAX_CLIPS = _env_int("TVLT_MAX_CLIPS", 16)  # decoded clips kept server-side (LRU, all users together)
ATTENTION_CACHE = 2  # captured layers kept for cross-modal clicks (~190 MB each at tvlt-base size)
MAX_USER_GALLERY = 8  # videos one user may add to the retrieval gallery
SESSION_TTL_S = 3600  # per-user state expires after this long without use

# ---- server ----
CONCURRENCY_LIMIT = _env_int("TVLT_CONCURRENCY", 2)  # handlers running at once (2-core CPU)
QUEUE_MAX_SIZE = _env_int("TVLT_QUEUE_SIZE", 32)
MAX_FILE_AGE_S = _env_int("TVLT_MAX_FILE_AGE_S", 3600)
SERVER_PORT = _env_int("GRADIO_SERVER_PORT", 7860)


def server_name() -> str:
    """0.0.0.0 on Hugging Face Spaces (SPACE_ID is set there), 127.0.0.1 otherwise; GRADIO_SERVER_NAME wins."""
    return os.environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1")


# ---- one temporary directory for everything the app writes ----
def _make_temp_root() -> Path:
    given = os.environ.get("TVLT_TEMP_DIR")
    if given:
        root = Path(given)
        root.mkdir(parents=True, exist_ok=True)
        return root
    root = Path(tempfile.mkdtemp(prefix="tvlt-explorer-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


TEMP_ROOT = _make_temp_root()
GRADIO_TEMP = TEMP_ROOT / "gradio"  # uploads and gradio's processed files
for _d in (GRADIO_TEMP, TEMP_ROOT / "matplotlib"):
    _d.mkdir(parents=True, exist_ok=True)

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["GRADIO_TEMP_DIR"] = str(GRADIO_TEMP)  # uploads and outputs; TVLT_TEMP_DIR moves the whole root
os.environ.setdefault("MPLCONFIGDIR", str(TEMP_ROOT / "matplotlib"))
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
if not (os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME")):  # a cache you point to is used (and kept)
    os.environ["HF_HUB_CACHE"] = str(TEMP_ROOT / "hub")  # otherwise hub checkpoints live and go with the temp dir


def prune_temp(max_age_s: float = MAX_FILE_AGE_S, root: Path | None = None) -> int:
    """Delete files older than `max_age_s` under `root` (default: uploads and outputs); returns how many."""
    roots = [GRADIO_TEMP if root is None else root]
    cutoff = time.time() - max_age_s
    removed = 0
    for path in (p for r in roots for p in r.rglob("*")):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:  # another request removed it first
            continue
    return removed
