"""A classical baseline: TF-IDF word uni- and bigrams with logistic regression (ridge regression for scores).

Every evaluation shows it next to the transformer, trained on the same train split and
scored on the same split, so a user sees at once whether fine-tuning was worth it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import BmcoreError
from .metrics import compute_metrics, multi_label_metrics, regression_metrics

BASELINE_NAME = "tfidf-logreg"
PAIR_SEPARATOR = " [SEP] "
BASELINE_C = 4.0  # inverse regularisation; fixed (not tuned on test) and a little looser than sklearn's 1.0,
# which under-fits sparse bigram features on small datasets


def one_thread() -> Any:
    """A context in which BLAS and OpenMP run one thread: the solver's vector operations are too small to gain from
    threads, and on a loaded CPU (or next to torch's threads) OpenBLAS threads wait on each other. GoEmotions, 3,000
    comments, 28 one-vs-rest fits on 2 loaded cores: 123-145 s with the default 2 threads, 7 s with one."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def baseline_texts(df: pd.DataFrame) -> list[str]:
    """The text the baseline reads: ``text``, or ``text [SEP] text_pair`` for pairs."""
    if "text" not in df:
        raise BmcoreError("the data has no 'text' column; prepare it first")
    text = df["text"].fillna("").astype(str)
    if "text_pair" in df:
        text = text + PAIR_SEPARATOR + df["text_pair"].fillna("").astype(str)
    return text.tolist()


def fit_baseline(train_df: pd.DataFrame, label_names: list[str], seed: int = 0, c: float = BASELINE_C) -> Any:
    """Fit the TF-IDF + logistic regression pipeline on ``train_df`` (columns text[, text_pair], label).

    Deterministic: lbfgs with a fixed ``seed``. The pipeline's ``classes_`` are ids into
    ``label_names``; use :func:`baseline_probs` to get probabilities for every class.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    index = {n: i for i, n in enumerate(label_names)}
    labels = train_df["label"].astype(str)
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise BmcoreError(f"baseline train labels {unknown[:5]} are not in the label names {label_names[:10]}")
    y = labels.map(index).to_numpy()
    if len(np.unique(y)) < 2:
        raise BmcoreError("the baseline needs at least two classes in the train split")
    pipe = Pipeline([
        ("tfidf", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, strip_accents="unicode")),
        ("logreg", LogisticRegression(C=c, max_iter=1000, random_state=seed)),
    ])
    with one_thread():
        pipe.fit(baseline_texts(train_df), y)
    return pipe


def baseline_probs(pipe: Any, df: pd.DataFrame, label_names: list[str]) -> np.ndarray:
    """The probabilities [n, len(label_names)] of every class (0 for classes absent from train)."""
    part = pipe.predict_proba(baseline_texts(df))
    probs = np.zeros((len(df), len(label_names)), dtype=np.float64)
    probs[:, pipe.classes_] = part
    return probs


Decide = Callable[[np.ndarray, Sequence[str]], list[Any]]  # a task's decide: probabilities, label names -> labels


def baseline_metrics(train_df: pd.DataFrame, test_df: pd.DataFrame, label_names: list[str], seed: int = 0,
                     n_bins: int | None = None, *, decide: Decide) -> dict[str, Any]:
    """Train the baseline on ``train_df`` and score it on ``test_df``, its probabilities turned into labels by
    ``decide`` (the task's :meth:`bmcore.tasks.base.Task.decide`): the same metric dict as the model's."""
    import time

    t0 = time.perf_counter()
    pipe = fit_baseline(train_df, label_names, seed=seed)
    probs = baseline_probs(pipe, test_df, label_names)
    kwargs = {"n_bins": n_bins} if n_bins else {}
    metrics = compute_metrics(test_df["label"].astype(str).tolist(), decide(probs, label_names), probs,
                              label_names, **kwargs)
    metrics["model"] = BASELINE_NAME
    metrics["train_rows"] = int(len(train_df))
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    return metrics


def multi_label_baseline_metrics(train_df: pd.DataFrame, test_df: pd.DataFrame, label_names: list[str],
                                 train_gold: np.ndarray, test_gold: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """The multi-label baseline: TF-IDF uni- and bigrams with one-vs-rest logistic regression (balanced class
    weights, threshold 0.5), trained on ``train_df`` and scored on ``test_df`` (0/1 gold matrices given)."""
    import time

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    t0 = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, strip_accents="unicode")
    x_train, x_test = vec.fit_transform(baseline_texts(train_df)), vec.transform(baseline_texts(test_df))
    probs = np.zeros(test_gold.shape, dtype=np.float64)
    with one_thread():
        for j in range(len(label_names)):  # one binary model per label; a label without both classes keeps its constant
            y = train_gold[:, j]
            if 0 < y.sum() < len(y):
                clf = LogisticRegression(C=BASELINE_C, max_iter=1000, class_weight="balanced", random_state=seed)
                probs[:, j] = clf.fit(x_train, y).predict_proba(x_test)[:, 1]
            else:
                probs[:, j] = float(y.mean()) if len(y) else 0.0
    metrics = multi_label_metrics(test_gold, (probs >= 0.5).astype(np.int64), probs, label_names, [0.5] * len(label_names))
    metrics["model"] = BASELINE_NAME
    metrics["train_rows"] = int(len(train_df))
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    return metrics


REGRESSION_BASELINE_NAME = "tfidf-ridge"
RIDGE_ALPHA = 1.0  # scikit-learn's default; fixed, not tuned on test


def regression_features(train_df: pd.DataFrame, df: pd.DataFrame) -> tuple[Any, Any]:
    """TF-IDF features of ``train_df`` and ``df``. For pairs: each text's TF-IDF vector, their elementwise product
    (the words both share) and their cosine similarity, so a linear model can read how alike the two texts are."""
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, strip_accents="unicode")
    if "text_pair" not in train_df:
        x_train = vec.fit_transform(train_df["text"].fillna("").astype(str))
        return x_train, vec.transform(df["text"].fillna("").astype(str))
    vec.fit(pd.concat([train_df["text"], train_df["text_pair"]]).fillna("").astype(str))

    def pair(frame: pd.DataFrame) -> Any:
        a = vec.transform(frame["text"].fillna("").astype(str))
        b = vec.transform(frame["text_pair"].fillna("").astype(str))
        shared = a.multiply(b)
        cosine = sparse.csr_matrix(np.asarray(shared.sum(axis=1)))  # TF-IDF rows are unit length
        return sparse.hstack([a, b, shared, cosine]).tocsr()

    return pair(train_df), pair(df)


def regression_baseline_metrics(train_df: pd.DataFrame, test_df: pd.DataFrame) -> dict[str, Any]:
    """The regression baseline: ridge regression on TF-IDF features (:func:`regression_features`), trained on
    ``train_df`` and scored on ``test_df`` with the same metric keys as the model."""
    import time

    from sklearn.linear_model import Ridge

    t0 = time.perf_counter()
    x_train, x_test = regression_features(train_df, test_df)
    with one_thread():
        model = Ridge(alpha=RIDGE_ALPHA).fit(x_train, train_df["label"].astype(float).to_numpy())
    metrics = regression_metrics(test_df["label"].astype(float).to_numpy(), model.predict(x_test))
    metrics["model"] = REGRESSION_BASELINE_NAME
    metrics["train_rows"] = int(len(train_df))
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    return metrics


PIXEL_BASELINE_NAME = "pixels16-logreg"
PIXEL_SIDE = 16  # the baseline sees each image as 16 x 16 grayscale pixels (256 features)


def pixel_features(images: Any, side: int = PIXEL_SIDE) -> np.ndarray:
    """Each image (bytes) downscaled to ``side`` x ``side`` grayscale, as a row of values in [0, 1]."""
    import io

    from PIL import Image

    rows = []
    for data in images:
        img = Image.open(io.BytesIO(bytes(data))).convert("L").resize((side, side), Image.BILINEAR)
        rows.append(np.asarray(img, dtype=np.float64).ravel() / 255.0)
    return np.stack(rows) if rows else np.zeros((0, side * side))


def pixel_baseline_metrics(train_df: pd.DataFrame, test_df: pd.DataFrame, label_names: list[str], seed: int = 0,
                           n_bins: int | None = None, *, decide: Decide) -> dict[str, Any]:
    """The image baseline: logistic regression on :func:`pixel_features` (standardised), trained on ``train_df`` and
    scored on ``test_df`` (columns image, label), its probabilities turned into labels by ``decide`` (the task's):
    the same metric dict as the model's."""
    import time

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t0 = time.perf_counter()
    index = {n: i for i, n in enumerate(label_names)}
    y = train_df["label"].astype(str).map(index)
    if y.isna().any():
        raise BmcoreError(f"baseline train labels {sorted(set(train_df['label'].astype(str)) - set(index))[:5]} are not in "
                          f"the label names {label_names[:10]}")
    if y.nunique() < 2:
        raise BmcoreError("the baseline needs at least two classes in the train split")
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed))
    with one_thread():
        pipe.fit(pixel_features(train_df["image"]), y.to_numpy(dtype=np.int64))
    probs = np.zeros((len(test_df), len(label_names)), dtype=np.float64)
    probs[:, pipe.classes_] = pipe.predict_proba(pixel_features(test_df["image"]))
    kwargs = {"n_bins": n_bins} if n_bins else {}
    metrics = compute_metrics(test_df["label"].astype(str).tolist(), decide(probs, label_names), probs, label_names,
                              **kwargs)
    metrics["model"] = PIXEL_BASELINE_NAME
    metrics["train_rows"] = int(len(train_df))
    metrics["seconds"] = round(time.perf_counter() - t0, 3)
    return metrics
