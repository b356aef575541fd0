"""The encoder on ONNX Runtime against sentence-transformers on PyTorch: the same vectors and the
same answers on the labelled sets; its graph exported once and kept by the model files' hash; a
start after the first imports no PyTorch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bot.config import Settings
from bot.nlu import Recognizer, evaluate, load_model, model_path
from bot.nlu_encoder import OnnxEncoder, ensure_graph, graph_path
from bot.store.database import Database
from bot.store.seed import seed_demo
from integrations.faq import StoreFaq
from service.wiring import build_recognizer, teach_shop
from tests.test_nlu import cli_env

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
EVAL_SETS = ("nlu_dev.jsonl", "nlu_test.jsonl", "nlu_heldout.jsonl")
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn")


def eval_texts() -> list[str]:
    texts = []
    for name in EVAL_SETS:
        texts += [json.loads(line)["text"] for line in (DATA / name).read_text(encoding="utf-8").splitlines()]
    return texts


@pytest.fixture(scope="module")
def shop_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path_factory.mktemp('torch') / 'faq.db'}")
    db.create_schema()
    seed_demo(db)
    yield db
    db.close()


@pytest.fixture(scope="module")
def torch_recognizer(tmp_path_factory: pytest.TempPathFactory, shop_db: Database) -> Iterator[Recognizer]:
    """The recogniser as it was before: sentence-transformers on PyTorch, fitted on its own vectors."""
    cache = tmp_path_factory.mktemp("torch-cache")
    recognizer = build_recognizer(Settings(_env_file=None, nlu_runtime="torch", nlu_cache_dir=str(cache)))
    teach_shop(recognizer, shop_db, StoreFaq(shop_db))
    yield recognizer
    recognizer.batcher.close()


def test_the_default_runtime_is_onnx(recognizer: Recognizer):
    assert isinstance(recognizer.model, OnnxEncoder)


def test_vectors_match_pytorch_on_the_labelled_sets(recognizer: Recognizer, torch_recognizer: Recognizer):
    texts = [t.lower() for t in eval_texts()] + ["word " * 400, "", "  spaced  out  ", "這件外套有M號嗎"]
    ours = recognizer.encode_now(texts)
    theirs = torch_recognizer.encode_now(texts)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    cosine = (ours * theirs).sum(axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(theirs, axis=1))
    assert cosine.min() > 1 - 1e-4, texts[int(np.argmin(cosine))]
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_batching_does_not_change_a_vector(recognizer: Recognizer):
    texts = [t.lower() for t in eval_texts()[:40]]
    one_by_one = np.vstack([recognizer.model.encode([t], batch_size=1) for t in texts])
    assert np.abs(one_by_one - recognizer.model.encode(texts, batch_size=16)).max() < 1e-5


async def test_answers_match_pytorch_on_the_labelled_sets(
    recognizer: Recognizer, torch_recognizer: Recognizer, nlu_cache_dir: Path, shop_db: Database
):
    """With the same fitted classifiers, PyTorch's vectors of the messages give the same answers."""
    # the ONNX runtime's fits (its cache key), the settings and the Chinese encoder as the app has them
    settings = Settings(_env_file=None, nlu_runtime="onnx", nlu_cache_dir=str(nlu_cache_dir))
    same_fits = build_recognizer(settings, model=torch_recognizer.model, zh_encoder=recognizer.zh_encoder)
    teach_shop(same_fits, shop_db, StoreFaq(shop_db))
    texts = eval_texts()
    ours = [await recognizer.recognize(t) for t in texts]
    theirs = [await same_fits.recognize(t) for t in texts]
    same_fits.batcher.close()
    differ = [
        (t, a.name, b.name) for t, a, b in zip(texts, ours, theirs) if (a.name, a.entities) != (b.name, b.entities)
    ]
    assert not differ
    assert max(abs(a.confidence - b.confidence) for a, b in zip(ours, theirs)) < 1e-3


async def test_accuracy_matches_pytorch_fitted_on_its_own_vectors(recognizer: Recognizer, torch_recognizer: Recognizer):
    """Each runtime fitted on its own vectors of the examples (as a start without a cache does):
    the same accuracy on every labelled set and language, within 0.3 points."""
    for name in EVAL_SETS:
        ours = (await evaluate(recognizer, DATA / name)).per_language
        theirs = (await evaluate(torch_recognizer, DATA / name)).per_language
        assert ours.keys() == theirs.keys()
        for language in ours:
            assert abs(ours[language]["accuracy"] - theirs[language]["accuracy"]) <= 0.003, (name, language)


def test_the_graph_is_exported_once(recognizer: Recognizer, nlu_cache_dir: Path):
    graph = graph_path(model_path(), nlu_cache_dir)
    assert graph.exists() and list(nlu_cache_dir.glob("encoder-*.onnx")) == [graph]
    written = graph.stat().st_mtime_ns
    again = load_model(cache_dir=str(nlu_cache_dir))
    assert graph.stat().st_mtime_ns == written
    assert np.array_equal(again.encode(["where is my order"]), recognizer.model.encode(["where is my order"]))


def test_the_graph_follows_the_model_files(tmp_path: Path, nlu_cache_dir: Path):
    copy = shutil.copytree(model_path(), tmp_path / "model")
    assert graph_path(copy, nlu_cache_dir) == graph_path(model_path(), nlu_cache_dir)  # contents, not place
    (copy / "config.json").write_text((copy / "config.json").read_text() + "\n")
    changed = graph_path(copy, nlu_cache_dir)
    assert changed != graph_path(model_path(), nlu_cache_dir) and not changed.exists()


def test_a_stale_graph_is_removed_when_a_new_one_is_exported(tmp_path: Path, nlu_cache_dir: Path):
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / "encoder-0000.onnx"
    stale.write_bytes(b"an older model's graph")
    shutil.copy(graph_path(model_path(), nlu_cache_dir), cache)  # as if exported: nothing to do
    assert ensure_graph(model_path(), cache).exists() and stale.exists()
    copy = shutil.copytree(model_path(), tmp_path / "model")
    (copy / "README.md").write_text("changed")
    fresh = ensure_graph(copy, cache)  # another model: exported, the others go
    assert sorted(cache.glob("encoder-*.onnx")) == [fresh]


def test_a_start_after_the_first_imports_no_pytorch(tmp_path: Path, recognizer: Recognizer, nlu_cache_dir: Path):
    code = (
        "import json, sys\n"
        "import app\n"
        "code = app.main(['nlu', 'parse', 'where is my order 1001'])\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
        "sys.exit(code)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=cli_env(tmp_path, nlu_cache_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    answer, imported = out.stdout.strip().splitlines()
    assert json.loads(answer)["intent"] == "order_status"
    assert json.loads(imported) == []
    assert "fitting the recogniser" not in out.stderr and "exporting" not in out.stderr


def test_export_on_the_command_line(tmp_path: Path, recognizer: Recognizer, nlu_cache_dir: Path):
    env = cli_env(tmp_path, nlu_cache_dir)
    out = subprocess.run(
        [sys.executable, "app.py", "nlu", "export"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    assert f"encoder graph: {graph_path(model_path(), nlu_cache_dir)}" in out.stdout
    assert "exporting" not in out.stderr and "fitting the recogniser" not in out.stderr  # both kept already
    out = subprocess.run(
        [sys.executable, "app.py", "nlu", "export"],
        cwd=ROOT,
        env={**env, "NLU_CACHE_DIR": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "NLU_CACHE_DIR is empty" in out.stderr


def test_an_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="NLU_RUNTIME"):
        Settings(_env_file=None, nlu_runtime="tensorflow")
