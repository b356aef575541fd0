"""The fit cache: written on the first build, used on the next, refitted when what the fit depends
on changes or the file is broken. Uses the real bundled model of the session's recogniser, on a few
examples so that each fit is quick."""

from __future__ import annotations

import logging
from pathlib import Path

import joblib
import pytest

from bot.nlu import Recognizer
from bot.nlu_cache import FitCache, model_identity

EXAMPLES = {
    "greet": ["hello there", "good morning", "hi, anyone around?", "hey shop"],
    "order_status": ["where is my order", "has my parcel shipped", "track my package", "when will my order arrive"],
    "check_stock": ["do you have this in size 9", "is the dress in stock", "any medium left", "got it in black?"],
}
PROBES = ["hello", "where's my parcel", "do you have the runner in size 9", "is the hoodie in stock in L"]
MODEL = {"path": "/models/test", "files": [["model.safetensors", 1, 1]]}


def build(recognizer: Recognizer, cache: FitCache, examples=EXAMPLES) -> Recognizer:
    return Recognizer(recognizer.model, examples, cache=cache)


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


async def answers(recognizer: Recognizer) -> list[tuple[str, float, tuple]]:
    return [(i.name, i.confidence, i.candidates) for i in [await recognizer.recognize(t) for t in PROBES]]


async def test_written_on_first_build_and_used_on_the_next(recognizer, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cache = FitCache(tmp_path / "cache", MODEL)
    first = build(recognizer, cache)
    path = cache.path("intents")
    assert path.exists() and "fitting the recogniser" in messages(caplog)
    written = path.stat().st_mtime_ns
    caplog.clear()

    second = build(recognizer, FitCache(tmp_path / "cache", MODEL))
    assert "fitting the recogniser" not in messages(caplog) and "nlu cache used" in messages(caplog)
    assert path.stat().st_mtime_ns == written
    assert await answers(second) == await answers(first)
    assert not list(path.parent.glob("*.tmp"))  # written through a temporary name, then renamed


async def test_faq_phrasings_are_cached_too(recognizer, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cache = FitCache(tmp_path, MODEL)
    faq = {"shipping": ["how long does shipping take", "delivery times"], "returns": ["can I return an item"]}
    first = build(recognizer, cache)
    first.set_faq(faq)
    assert cache.path("faq").exists()
    caplog.clear()
    second = build(recognizer, cache)
    second.set_faq(faq)
    assert messages(caplog).count("nlu cache used") == 2
    vector = recognizer.encode_now(["how long is delivery"])[0]
    assert second.match_faq(vector) == first.match_faq(vector)
    caplog.clear()
    second.set_faq({**faq, "payment": ["which cards do you take"]})
    assert "nlu cache out of date, fitting again" in messages(caplog)


async def test_changed_examples_refit(recognizer, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cache = FitCache(tmp_path, MODEL)
    build(recognizer, cache)
    old_key = joblib.load(cache.path("intents"))["key"]
    caplog.clear()
    more = {**EXAMPLES, "greet": [*EXAMPLES["greet"], "good evening"]}
    changed = build(recognizer, cache, more)
    assert "nlu cache out of date, fitting again" in messages(caplog)
    assert "fitting the recogniser" in messages(caplog)
    assert joblib.load(cache.path("intents"))["key"] != old_key
    assert (await changed.recognize("good evening")).name == "greet"


def test_another_model_or_settings_refit(recognizer, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    build(recognizer, FitCache(tmp_path, MODEL))
    caplog.clear()
    build(recognizer, FitCache(tmp_path, {**MODEL, "files": [["model.safetensors", 2, 1]]}))
    assert "fitting the recogniser" in messages(caplog)
    caplog.clear()
    Recognizer(
        recognizer.model,
        EXAMPLES,
        max_batch=8,
        cache=FitCache(tmp_path, {**MODEL, "files": [["model.safetensors", 2, 1]]}),
    )
    assert "fitting the recogniser" in messages(caplog)


@pytest.mark.parametrize("content", [b"", b"not a pickle at all", b"\x80\x04\x95garbage"])
async def test_corrupt_cache_refits_with_a_warning(recognizer, tmp_path, caplog, content):
    caplog.set_level(logging.INFO)
    cache = FitCache(tmp_path, MODEL)
    cache.path("intents").write_bytes(content)
    rebuilt = build(recognizer, cache)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["nlu cache unreadable, fitting again"]
    assert "fitting the recogniser" in messages(caplog)
    assert (await rebuilt.recognize("where is my order")).name == "order_status"
    assert "value" in joblib.load(cache.path("intents"))  # overwritten with a good file


def test_a_cache_that_cannot_be_written_only_warns(recognizer, tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    build(recognizer, FitCache(blocker / "cache", MODEL))  # its parent is a file
    assert "nlu cache not written" in messages(caplog)


def test_model_identity_follows_the_files(tmp_path: Path):
    (tmp_path / "config.json").write_text("{}")
    before = model_identity(tmp_path)
    assert before["path"] == str(tmp_path.resolve()) and before["files"][0][:2] == ["config.json", 2]
    (tmp_path / "config.json").write_text('{"a": 1}')
    assert model_identity(tmp_path) != before
