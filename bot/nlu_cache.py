"""What the recogniser fits at start (example embeddings, classifiers, the FAQ's vectors), kept on
disk so that a start after the first loads it instead of fitting again.

Each kind of fit has one file in the cache directory holding a key and what was fitted. The key
is a hash of everything the fit depends on (the texts, the model's identity, the library versions,
the fitting settings); a file whose key differs is refitted and overwritten, and a file that
cannot be read is refitted with a warning. Files are written to a temporary name and renamed, so
a reader never sees half a file. They are pickles (joblib) this app wrote itself; do not put files
from elsewhere in the directory, as loading a pickle can run code.

Fitted scikit-learn classifiers are kept as their weights in numpy arrays (`bot/nlu_linear.py`), so
that loading them imports neither scikit-learn nor most of SciPy. The encoder's ONNX graph is kept
in the same directory (`bot/nlu_encoder.py`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bot.nlu_encoder import package_versions
from bot.nlu_linear import compact

log = logging.getLogger(__name__)

T = TypeVar("T")
FORMAT = 3  # bump when what a cache file holds changes shape


# The libraries that compute the embeddings, per runtime (NLU_RUNTIME); the ONNX graph is exported
# by torch and transformers.
RUNTIME_PACKAGES = {
    "onnx": ("onnxruntime", "tokenizers", "torch", "transformers", "onnx"),
    "torch": ("sentence-transformers", "transformers", "torch"),
}


def model_identity(path: str | Path, runtime: str = "onnx") -> dict[str, Any]:
    """The model directory's path and every file's size and modification time, with the runtime
    and the versions of the libraries that compute its embeddings."""
    root = Path(path).resolve()
    files = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            file = Path(dirpath) / name
            stat = file.stat()
            files.append([file.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns])
    identity: dict[str, Any] = {"path": str(root), "files": sorted(files), "runtime": runtime}
    identity.update(package_versions(*RUNTIME_PACKAGES[runtime]))
    return identity


def cache_key(parts: dict[str, Any]) -> str:
    data = {"format": FORMAT, **package_versions("scikit-learn", "numpy", "scipy"), **parts}
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class FitCache:
    """Fitted objects in `directory`, each kind in `<name>.joblib` under its key."""

    def __init__(self, directory: str | Path, model: dict[str, Any]) -> None:
        self.directory = Path(directory)
        self.model = model

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.joblib"

    def get_or_fit(self, name: str, parts: dict[str, Any], fit: Callable[[], T]) -> T:
        """What the file `name` holds under the key of `parts` (with the model's identity); else
        `fit()`, written to the file."""
        key = cache_key({"kind": name, "model": self.model, **parts})
        path = self.path(name)
        found = self._load(path, key)
        if found is not None:
            log.info("nlu cache used", extra={"cache": str(path)})
            return found
        value = compact(fit())
        self._save(path, key, value)
        return value

    def _load(self, path: Path, key: str) -> Any:
        import joblib

        if not path.exists():
            return None
        try:
            data = joblib.load(path)
        except Exception as exc:  # a broken or truncated file, or one of an incompatible library
            log.warning("nlu cache unreadable, fitting again", extra={"cache": str(path), "error": repr(exc)})
            return None
        if not isinstance(data, dict) or "value" not in data:
            log.warning("nlu cache unreadable, fitting again", extra={"cache": str(path), "error": "not a cache file"})
            return None
        if data.get("key") != key:
            log.info("nlu cache out of date, fitting again", extra={"cache": str(path)})
            return None
        return data["value"]

    def _save(self, path: Path, key: str, value: Any) -> None:
        import joblib

        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as file:
                joblib.dump({"key": key, "value": value}, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
            tmp = None
            log.info("nlu cache written", extra={"cache": str(path)})
        except Exception as exc:  # a read-only or full disk: the service runs, only starts stay slow
            log.warning("nlu cache not written", extra={"cache": str(path), "error": repr(exc)})
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
