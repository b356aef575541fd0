"""The recogniser's sentence encoder on ONNX Runtime: the bundled model's graph, exported once from
its PyTorch weights and kept in the fit cache's directory, with the model's own tokenizer.

What it computes is what sentence-transformers computes for all-MiniLM-L6-v2 (its modules.json:
Transformer, mean pooling, Normalize): the tokens of each text (the model's tokenizer.json, cut at
its `max_seq_length`), the transformer's last hidden state, the mean over the real tokens, scaled
to length 1. Starting from a graph already exported imports neither torch nor transformers; the
export does, once (`python app.py nlu export`, or the first start).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
GRAPH_FORMAT = 1  # bump when what the export writes changes


def package_versions(*names: str) -> dict[str, str | None]:
    """Installed versions, read from the packages' metadata (importing torch to ask would cost
    the seconds this module saves)."""
    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def files_digest(model_dir: str | Path) -> str:
    """SHA-256 over the model directory's files (names and contents)."""
    root = Path(model_dir).resolve()
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(file.relative_to(root).as_posix().encode("utf-8") + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def model_digest(model_dir: str | Path, cache_dir: str | Path) -> str:
    """`files_digest` of the model, remembered in `cache_dir` against the files' sizes and
    modification times (hashing 90 MB costs a third of a second at every start)."""
    root = Path(model_dir).resolve()
    stats = [
        [p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns] for p in root.rglob("*") if p.is_file()
    ]
    seen = {"path": str(root), "files": sorted(stats)}
    memo = Path(cache_dir) / "model-digest.json"
    try:
        kept = json.loads(memo.read_text(encoding="utf-8"))
        if {k: kept.get(k) for k in seen} == seen and isinstance(kept.get("sha256"), str):
            return str(kept["sha256"])
    except (OSError, ValueError, AttributeError):  # none yet, or not ours: compute it
        pass
    digest = files_digest(root)
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{memo.name}.", suffix=".tmp", dir=memo.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump({**seen, "sha256": digest}, file)
        os.replace(tmp, memo)
    except OSError:  # a read-only directory: hashed again next time
        pass
    return digest


def graph_key(model_dir: str | Path, cache_dir: str | Path) -> str:
    """What the exported graph depends on: the model's files and the exporter's versions."""
    data = {
        "format": GRAPH_FORMAT,
        "opset": OPSET,
        "model": model_digest(model_dir, cache_dir),
        **package_versions("torch", "transformers", "onnx"),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()


def graph_path(model_dir: str | Path, cache_dir: str | Path) -> Path:
    """Where the graph of this model is kept in the cache directory."""
    return Path(cache_dir) / f"encoder-{graph_key(model_dir, cache_dir)[:24]}.onnx"


def export(model_dir: str | Path, target: str | Path) -> Path:
    """Export the model's transformer (PyTorch weights) to an ONNX graph at `target`: inputs
    input_ids, attention_mask, token_type_ids (int64, batch x tokens); output the last hidden
    state. Written to a temporary name and renamed."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory: nothing to fetch, ever
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no bar of loading the weights in build logs
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting the sentence model to ONNX", extra={"graph": str(target)})
    # Eager attention: its mask arithmetic is traced as it is written, so padded batches keep
    # their mask in the graph whatever the sample looks like.
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # A sample of two rows of different lengths, so that padding is part of what is traced.
    ids = torch.tensor([[101, 7592, 2045, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "hidden")}
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        # The tracer warns of Python branches on shapes; each is taken the same way for every
        # input (the mask always matches the ids), which the checks against PyTorch confirm.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                LastHidden(),
                (ids, mask, torch.zeros_like(ids)),
                tmp,
                input_names=list(INPUTS),
                output_names=["hidden"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def ensure_graph(model_dir: str | Path, cache_dir: str | Path) -> Path:
    """The model's graph in `cache_dir`, exported first if it is not there."""
    path = graph_path(model_dir, cache_dir)
    if not path.exists():
        export(model_dir, path)
        for old in path.parent.glob("encoder-*.onnx"):  # another model's or exporter's (90 MB each)
            if old != path:
                old.unlink(missing_ok=True)
    return path


class OnnxEncoder:
    """`encode(texts)` as sentence-transformers' `SentenceTransformer.encode` answers it for this
    model (float32 rows, L2-normalised), computed by ONNX Runtime."""

    def __init__(self, model_dir: str | Path, graph: str | Path, threads: int | None = None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        config = json.loads((model_dir / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.max_seq_length = int(config.get("max_seq_length", 256))
        self.dimension = int(json.loads((model_dir / "config.json").read_text(encoding="utf-8"))["hidden_size"])
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        # tokenizer.json pads every text to a fixed 128 tokens and cuts there; sentence-transformers
        # pads to the batch's longest text and cuts at max_seq_length.
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        pad = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=pad if pad is not None else 0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are noise
        self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def encode(
        self,
        texts: list[str],
        batch_size: int = 32,
        normalize_embeddings: bool = True,
        convert_to_numpy: bool = True,
        show_progress_bar: bool = False,
        **_: Any,
    ) -> np.ndarray:
        """One row per text. Texts are taken longest first, `batch_size` at a time, so that a
        batch pads little (as sentence-transformers does); rows come back in the texts' order."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            out[rows] = self._batch([texts[i].strip() for i in rows])
        if normalize_embeddings:  # already of length 1; as sentence-transformers, once more
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self.session.run(
            None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def load_onnx(model_dir: str | Path, cache_dir: str | Path | None, threads: int | None = None) -> OnnxEncoder:
    """The encoder for the model in `model_dir`, its graph from `cache_dir` (exported there if
    missing); without a cache directory, exported to a temporary one for this process."""
    if cache_dir:
        return OnnxEncoder(model_dir, ensure_graph(model_dir, cache_dir), threads)
    with tempfile.TemporaryDirectory(prefix="nlu-graph-") as tmp:
        return OnnxEncoder(model_dir, export(model_dir, Path(tmp) / "encoder.onnx"), threads)
