"""The recogniser's fitted classifiers as numpy arrays: what scikit-learn's fitted logistic
regressions and character n-gram TF-IDF vectorizers compute, without importing scikit-learn.

scikit-learn and SciPy take longer to import than the rest of the service together, and a start
that loads its fits from the cache (`bot/nlu_cache.py`) needs only their answers. The cache
therefore keeps the weights (`coef_`, `intercept_`, `classes_`; the n-gram vocabulary and `idf_`)
and these classes compute `predict_proba` and `transform` from them the way scikit-learn does
(the same arithmetic, in the same order; tests/test_nlu_linear.py holds them to 1e-6 on the
shipped examples). Refitting (examples taught while the service runs) needs the scikit-learn
objects again: `trainable` rebuilds them from the weights, so a warm refit starts from the same
point as it would from the original objects.

Only what the recogniser fits is translated (`compact` leaves anything else as it is): logistic
regression, and TfidfVectorizer over characters (`char`, `char_wb`) with lower-casing, no accent
stripping, l2 norm and idf. The n-gram matrices (`transform`) are SciPy sparse matrices, like
scikit-learn's; `scipy.sparse` alone imports in a tenth of a second.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np

_WHITE_SPACES = re.compile(r"\s\s+")  # scikit-learn's, in VectorizerMixin


class LinearModel:
    """A fitted `LogisticRegression`'s weights and its `predict_proba`."""

    def __init__(self, coef: np.ndarray, intercept: np.ndarray, classes: np.ndarray, params: dict[str, Any]) -> None:
        self.coef_ = coef
        self.intercept_ = intercept
        self.classes_ = classes
        self.params = params  # its constructor's arguments, for `trainable`
        self.n_iter_: np.ndarray | None = None

    @classmethod
    def of(cls, fitted: Any) -> LinearModel:
        model = cls(fitted.coef_, fitted.intercept_, fitted.classes_, fitted.get_params())
        model.n_iter_ = getattr(fitted, "n_iter_", None)
        return model

    def decision_function(self, X: Any) -> np.ndarray:
        scores = np.asarray(X @ self.coef_.T) + self.intercept_
        return scores.reshape(-1) if scores.shape[1] == 1 else scores

    def predict_proba(self, X: Any) -> np.ndarray:
        scores = self.decision_function(X)
        if len(self.classes_) <= 2:  # scikit-learn's _predict_proba_lr: the logistic of one score
            positive = 1.0 / (1.0 + np.exp(-scores))
            return np.vstack([1 - positive, positive]).T
        scores = scores - scores.max(axis=1, keepdims=True)  # scikit-learn's softmax
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def trainable(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(**self.params)
        model.coef_ = self.coef_.copy()
        model.intercept_ = self.intercept_.copy()
        model.classes_ = self.classes_
        model.n_features_in_ = self.coef_.shape[1]
        if self.n_iter_ is not None:
            model.n_iter_ = self.n_iter_
        return model


class CharNgrams:
    """A fitted `TfidfVectorizer` over character n-grams: its vocabulary, idf and `transform`."""

    def __init__(self, vocabulary: dict[str, int], idf: np.ndarray, params: dict[str, Any]) -> None:
        self.vocabulary_ = vocabulary
        self.idf_ = idf
        self.params = params
        self.analyzer = params["analyzer"]
        self.ngram_range = tuple(params["ngram_range"])
        self.sublinear_tf = bool(params["sublinear_tf"])
        self.dtype = params["dtype"]

    @staticmethod
    def supports(vectorizer: Any) -> bool:
        p = vectorizer.get_params()
        return (
            type(vectorizer).__name__ == "TfidfVectorizer"
            and p["analyzer"] in ("char", "char_wb")
            and p["input"] == "content"
            and p["lowercase"]
            and p["strip_accents"] is None
            and p["preprocessor"] is None
            and p["use_idf"]
            and p["norm"] == "l2"
            and not p["binary"]
            and p["max_df"] == 1.0
            and p["min_df"] == 1
            and p["max_features"] is None
            and p["vocabulary"] is None
        )

    @classmethod
    def of(cls, fitted: Any) -> CharNgrams:
        return cls(dict(fitted.vocabulary_), np.asarray(fitted.idf_), fitted.get_params())

    def analyze(self, text: str) -> list[str]:
        """The n-grams of one text, as scikit-learn's `_char_ngrams` / `_char_wb_ngrams` list them."""
        text = _WHITE_SPACES.sub(" ", text.lower())
        low, high = self.ngram_range
        grams: list[str] = []
        if self.analyzer == "char_wb":
            for word in text.split():
                word = f" {word} "
                length = len(word)
                for n in range(low, high + 1):
                    offset = 0
                    grams.append(word[offset : offset + n])
                    while offset + n < length:
                        offset += 1
                        grams.append(word[offset : offset + n])
                    if offset == 0:  # a word shorter than n is counted once
                        break
            return grams
        if low == 1:
            grams = list(text)
            low += 1
        for n in range(low, min(high + 1, len(text) + 1)):
            grams.extend(text[i : i + n] for i in range(len(text) - n + 1))
        return grams

    def transform(self, texts: list[str]) -> Any:
        """The TF-IDF rows (sparse, like scikit-learn's): counts of the known n-grams, 1 + log of
        each count, times idf, each row scaled to length 1."""
        import scipy.sparse as sp

        indices: list[int] = []
        counts: list[int] = []
        indptr = [0]
        for text in texts:
            found: dict[int, int] = {}
            for gram in self.analyze(text):
                column = self.vocabulary_.get(gram)
                if column is not None:
                    found[column] = found.get(column, 0) + 1
            indices.extend(found)
            counts.extend(found.values())
            indptr.append(len(indices))
        X = sp.csr_matrix(
            (
                np.asarray(counts, dtype=self.dtype),
                np.asarray(indices, dtype=np.int32),
                np.asarray(indptr, dtype=np.int32),
            ),
            shape=(len(texts), len(self.idf_)),
        )
        X.sort_indices()
        if self.sublinear_tf:
            np.log(X.data, X.data)
            X.data += 1.0
        X.data *= self.idf_[X.indices]
        for row in range(len(texts)):  # scikit-learn's normalize(norm="l2"): rows of zeros stay so
            part = X.data[X.indptr[row] : X.indptr[row + 1]]
            norm = np.sqrt(np.dot(part, part))
            if norm > 0:
                part /= norm
        return X

    def trainable(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(**self.params)
        vectorizer.vocabulary_ = dict(self.vocabulary_)
        vectorizer.idf_ = self.idf_.copy()
        return vectorizer


class SpellingModel:
    """A fitted pipeline of `CharNgrams` then `LinearModel`: `predict_proba` over texts."""

    def __init__(self, steps: list[tuple[str, Any]]) -> None:
        self.steps = steps

    @property
    def classes_(self) -> np.ndarray:
        return self.steps[-1][1].classes_

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        vectorizer, classifier = self.steps[0][1], self.steps[-1][1]
        return classifier.predict_proba(vectorizer.transform(texts))

    def trainable(self) -> Any:
        from sklearn.pipeline import Pipeline

        return Pipeline([(name, trainable(step)) for name, step in self.steps])


def compact(value: Any) -> Any:
    """`value` with the scikit-learn objects it holds (in tuples, lists and dataclasses, as the
    recogniser's fits are) replaced by these classes; what they do not cover is left as it is."""
    kind = type(value).__name__
    if kind == "LogisticRegression" and hasattr(value, "coef_"):
        return LinearModel.of(value)
    if kind == "TfidfVectorizer" and hasattr(value, "vocabulary_") and CharNgrams.supports(value):
        return CharNgrams.of(value)
    if kind == "Pipeline" and len(value.steps) == 2:
        steps = [(name, compact(step)) for name, step in value.steps]
        if isinstance(steps[0][1], CharNgrams) and isinstance(steps[1][1], LinearModel):
            return SpellingModel(steps)
        return value
    if isinstance(value, tuple):
        return tuple(compact(item) for item in value)
    if isinstance(value, list):
        return [compact(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: compact(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **changes)
    return value


def trainable(model: Any) -> Any:
    """The scikit-learn object for a model of this module (so that it can be refitted), or the
    model itself when it is one already."""
    rebuild = getattr(model, "trainable", None)
    return rebuild() if callable(rebuild) else model
