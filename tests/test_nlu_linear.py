"""The fitted classifiers as numpy arrays (`bot/nlu_linear.py`) against scikit-learn's own objects,
fitted on the shipped examples: the same probabilities and n-gram rows to 1e-6, and a warm refit
from the rebuilt objects the same as one from the originals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from bot.nlu import Recognizer, normalise
from bot.nlu_linear import CharNgrams, LinearModel, SpellingModel, compact, trainable

DATA = Path(__file__).parent / "data"
ODD = ["", "   ", "a", "a  b\tc", "ÉCOLE Straße", "這件外套有M號嗎？", "🙂 ok", "x" * 300]


def labelled_texts() -> list[str]:
    texts = []
    for name in ("nlu_dev.jsonl", "nlu_test.jsonl", "nlu_heldout.jsonl"):
        rows = (DATA / name).read_text(encoding="utf-8").splitlines()
        texts += [normalise(json.loads(line)["text"]).lower() for line in rows]
    return texts + ODD


@pytest.fixture(scope="module")
def fitted(demo_recognizer: Recognizer) -> tuple:
    """scikit-learn's classifiers fitted on the shipped examples and their vectors, as a start
    without a cache fits them."""
    base = demo_recognizer._base_intents
    return Recognizer._classify(base.texts, base.labels, base.matrix)


def test_the_cached_recogniser_holds_numpy_classifiers(recognizer: Recognizer):
    assert isinstance(recognizer._base_intents.by_meaning, LinearModel)
    assert isinstance(recognizer._base_intents.by_spelling, SpellingModel)
    assert isinstance(recognizer._base_faq.spelling, CharNgrams)


def test_meaning_probabilities_match_scikit_learn(recognizer: Recognizer, fitted):
    _, by_meaning, _ = fitted
    vectors = recognizer.encode_now(labelled_texts())
    ours = compact(by_meaning)
    assert list(ours.classes_) == list(by_meaning.classes_)
    assert np.abs(ours.predict_proba(vectors) - by_meaning.predict_proba(vectors)).max() < 1e-6


def test_spelling_probabilities_and_rows_match_scikit_learn(recognizer: Recognizer, fitted):
    _, _, by_spelling = fitted
    texts = labelled_texts() + recognizer._base_intents.texts
    ours = compact(by_spelling)
    assert isinstance(ours, SpellingModel)
    assert np.abs(ours.predict_proba(texts) - by_spelling.predict_proba(texts)).max() < 1e-6
    rows, theirs = ours.steps[0][1].transform(texts), by_spelling.steps[0][1].transform(texts)
    assert rows.shape == theirs.shape and abs(rows - theirs).max() < 1e-9


def test_faq_character_rows_match_scikit_learn(recognizer: Recognizer):
    faq = recognizer._base_faq
    fresh = recognizer._faq_index(faq.keys, faq.texts, faq.matrix)  # scikit-learn's vectorizer
    ours = compact(fresh)
    assert isinstance(ours.spelling, CharNgrams)
    for text in labelled_texts():
        expected = (fresh.spelling_matrix @ fresh.spelling.transform([text]).T).toarray().ravel()
        got = (ours.spelling_matrix @ ours.spelling.transform([text]).T).toarray().ravel()
        assert np.abs(got - expected).max() < 1e-9, text


def test_two_classes_use_the_logistic_function():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(40, 5))
    y = np.where(X[:, 0] + 0.3 * rng.normal(size=40) > 0, "yes", "no")
    model = LogisticRegression().fit(X, y)
    assert np.abs(compact(model).predict_proba(X) - model.predict_proba(X)).max() < 1e-12


def test_a_warm_refit_from_the_weights_equals_one_from_scikit_learn(recognizer: Recognizer, fitted):
    base = recognizer._base_intents
    original = base.__class__(base.texts, base.labels, *fitted, base.in_scope, base.classes)
    kept = compact(original)
    assert isinstance(kept.by_meaning, LinearModel)
    taught = ["where the heck is my parcel", "i want to talk to your manager"]
    texts, labels = base.texts + taught, base.labels + ["order_status", "human_agent"]
    matrix = np.vstack([base.matrix, recognizer.encode_now(taught)])
    from_sklearn = Recognizer._warm(original, texts, labels, matrix)
    from_weights = Recognizer._warm(kept, texts, labels, matrix)
    probe = labelled_texts()[:200]
    vectors = recognizer.encode_now(probe)
    assert np.abs(from_weights[0].predict_proba(vectors) - from_sklearn[0].predict_proba(vectors)).max() < 1e-9
    assert np.abs(from_weights[1].predict_proba(probe) - from_sklearn[1].predict_proba(probe)).max() < 1e-9
    assert trainable(from_sklearn[0]) is from_sklearn[0]  # a scikit-learn object stays itself
