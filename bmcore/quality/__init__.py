"""Label quality: find the rows of a prepared dataset whose label is likely wrong, and save a reviewed version.

How the scores are made (confident learning, Northcutt et al. 2021, through ``cleanlab``):

1. Every row of every split gets a feature vector from a frozen encoder: the mean-pooled last hidden states of
   ``builtin:minilm`` (the default), or TF-IDF word uni- and bigrams (``tfidf``, no model needed).
2. k-fold cross-validation of logistic regression on those features gives **out-of-fold** class probabilities:
   each row is scored by a model that never saw it, so a wrong label cannot vouch for itself.
3. ``cleanlab.filter.find_label_issues`` flags the rows whose given label disagrees with those probabilities beyond
   what the estimated per-class noise rates explain; ``get_label_quality_scores`` (self-confidence: the
   probability of the given label) ranks them. The suggested label is the most probable class.

Besides, rows whose features are (almost) the same but whose labels differ are listed as **conflicts**, and rows far
from every other row of their class (cosine distance to their nearest same-class neighbours) as **class outliers**.

That is the text check (:func:`~bmcore.quality.texts.score_texts`). The features and the checks come from the
dataset's task (:meth:`bmcore.tasks.base.Task.score_label_quality`): an image dataset is embedded by the built-in
image model and checked by cleanlab's ``Datalab`` for label issues, outliers and near duplicates
(:mod:`bmcore.quality.images`). The review, the stored result and the new versions are the same for both.

The result lives with the dataset, in ``datasets/NAME/quality/`` (``scores.parquet``, ``conflicts.parquet``,
``summary.json``), and carries the dataset's content hash: a dataset prepared again reads as not scored. Fixing
labels never touches the dataset itself: :func:`save_version` writes a new prepared dataset (``NAME-v2``...)
whose ``dataset.json`` records its parent and the changes.

One job per module:

* :mod:`~bmcore.quality.features` - embeddings, TF-IDF and out-of-fold class probabilities;
* :mod:`~bmcore.quality.neighbours` - conflicting near duplicates and class outliers;
* :mod:`~bmcore.quality.texts` - the text check the single-label task runs;
* :mod:`~bmcore.quality.images` - the image check the image task runs;
* :mod:`~bmcore.quality.results` - a result, and where it is stored;
* :mod:`~bmcore.quality.job` - which datasets the check works on, and scoring one (it asks the dataset's task);
* :mod:`~bmcore.quality.changes` - reviewed changes checked and saved as a new version.

The modules the tasks call (features, neighbours, texts, images) never import :mod:`bmcore.tasks`. What the pages
show of a result (the flags table, the tiles, the thumbnails, the changes table) is :mod:`bmcore.report.quality`.

The names below are re-exported for ``from bmcore import quality``; code inside :mod:`bmcore` imports each from its
module.
"""

from __future__ import annotations

from .changes import (
    ACTIONS,
    CHANGE_COLUMNS,
    apply_changes,
    check_changes,
    next_version_name,
    read_changes,
    save_version,
)
from .features import (
    DEFAULT_ENCODER,
    DEFAULT_FOLDS,
    ENCODERS,
    Progress,
    embed_texts,
    out_of_fold_probs,
    tfidf_features,
)
from .job import check_supported, quality_encoders, run_quality, score_dataset, supports
from .neighbours import class_outliers, find_conflicts
from .results import (
    CONFLICTS_FILE,
    QUALITY_DIR,
    SCORES_FILE,
    SUMMARY_FILE,
    QualityResult,
    load_quality,
    quality_dir,
    save_quality,
)
from .texts import describe_model, score_texts

__all__ = [
    "ACTIONS",
    "CHANGE_COLUMNS",
    "CONFLICTS_FILE",
    "DEFAULT_ENCODER",
    "DEFAULT_FOLDS",
    "ENCODERS",
    "QUALITY_DIR",
    "SCORES_FILE",
    "SUMMARY_FILE",
    "Progress",
    "QualityResult",
    "apply_changes",
    "check_changes",
    "check_supported",
    "class_outliers",
    "describe_model",
    "embed_texts",
    "find_conflicts",
    "load_quality",
    "next_version_name",
    "out_of_fold_probs",
    "quality_dir",
    "quality_encoders",
    "read_changes",
    "run_quality",
    "save_quality",
    "save_version",
    "score_dataset",
    "score_texts",
    "supports",
    "tfidf_features",
]
