"""The interface every modality implements (:class:`Modality`); see :mod:`bmcore.modalities`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Modality:
    """What differs between kinds of input. Subclasses set the names and override what they change."""

    name: str = ""  # a prepared dataset's ``modality``
    example_noun = "rows"  # what one example is called in sentences ("300 training rows")
    pipeline_task = ""  # transformers.pipeline's task name for a classifier of this input
    pipeline_example = ""  # a Python literal of one input, for the snippet that calls a saved model
    thumbnails = False  # True: the Evaluate page shows examples as pictures (bmcore.report.examples.gallery), not as text
    evaluate_note = ""  # a line the Evaluate page shows above the results of a model on these inputs ("" for none)
    evaluate_omits: tuple[str, ...] = ()  # the task's Evaluate sections these inputs have no view for (by key)
    few_shot = False  # True: few-shot training (bmcore.fewshot, SetFit on a sentence-transformer body) reads these inputs

    def evaluate_sections(self, sections: tuple[str, ...]) -> tuple[str, ...]:
        """A task's Evaluate sections (:attr:`bmcore.tasks.base.Task.evaluate_sections`) less those this input leaves out."""
        return tuple(key for key in sections if key not in self.evaluate_omits)

    def builtin_models(self) -> tuple[str, ...]:
        """The built-in model references (``builtin:...``) of this modality."""
        return ()

    def reads(self, model_or_config: Any) -> bool:
        """True when a loaded model (or its ``config``) reads this modality's inputs."""
        raise NotImplementedError

    def load_processor(self, ref: Any) -> Any:
        """What turns raw inputs into model inputs (a tokenizer, an image processor), saved with the model."""
        raise NotImplementedError

    def load_model(self, ref: Any, label_names: list[str] | None = None, **kwargs: Any) -> Any:
        """The classifier a reference names (with a fresh head for ``label_names`` when given), loaded safely."""
        raise NotImplementedError

    def pipeline_snippet(self, model_dir: str, pipeline_kwargs: str = "") -> str:
        """Python that loads a saved model with ``transformers.pipeline`` and calls it on one input
        (``pipeline_kwargs``: more arguments, e.g. ``", top_k=None"``, from the task)."""
        return (f'from transformers import pipeline\n\nclassifier = pipeline("{self.pipeline_task}", model={model_dir!r}'
                f"{pipeline_kwargs})\nprint(classifier({self.pipeline_example}))")

    # --- data: a raw source recognised, prepared, scored and measured (bmcore.data, bmcore.scoring) ---------

    input_noun = "inputs"  # what the inputs are called in the data's warnings ("texts", "images")
    # The Data page's views of these inputs, top to bottom, by their keys in the page (pages/data.py: "columns" to
    # choose, "tokens" to count; "image_source", "image_sizes", "image_samples" to look at pictures).
    data_views: tuple[str, ...] = ()
    default_model = ""  # the built-in model a run on these inputs starts from by default
    train_settings: tuple[str, ...] = ()  # the TrainConfig settings only these inputs have (the Train page shows them)

    def search_space(self, settings: dict[str, Any], dataset: Any, models: list[str]) -> list[Any]:
        """What a search (:mod:`bmcore.tune`) varies for these inputs: :class:`bmcore.search_space.SearchParam` s, around
        ``settings`` (the task's defaults), for ``dataset`` (a prepared dataset) and the candidate ``models``."""
        return []
    # Why a source of these inputs has no columns to choose, as the words after its name ("is an image source: ...");
    # "" for a table whose text and label columns are detected or chosen (bmcore.data.columns).
    fixed_columns = ""

    def reads_source(self, source: str) -> bool:
        """True when ``source`` (a path or reference) is known to hold these inputs without reading it."""
        return False

    def detect_problem_type(self, raw: Any, *, text_columns: list[str] | None = None, label_column: str | None = None,
                            label_columns: list[str] | None = None, label_delimiter: str | None = None) -> str:
        """The problem type a raw source (:class:`bmcore.data.readers.RawData`; None when :meth:`reads_source` knew
        it unread) of these inputs is learnt as, with the columns chosen (the rest detected)."""
        raise NotImplementedError

    def prepare_source(self, raw: Any, frames: dict[str, Any], name: str, ratios: tuple[float, float, float],
                       seed: int) -> Any:
        """A raw source of these inputs (its ``frames``: its splits, or all rows) prepared its own way as a
        :class:`bmcore.data.dataset.PreparedDataset`; None: a table, whose columns :func:`bmcore.data.preparation.prepare`
        maps to the standard ones."""
        return None

    def scoring_source(self, raw: Any, label_names: list[str], *, split: str | None = None) -> tuple[Any, str] | None:
        """A raw source of these inputs as the dataset a model whose classes are ``label_names`` scores, and the
        split to score (:func:`bmcore.scoring.whole_dataset`); None: a table, read by :func:`bmcore.scoring.text_dataset`."""
        return None

    def counting_tokenizer(self, ref: str) -> Any:
        """What counts a prepared dataset's tokens for its stats (a fast tokenizer of model ``ref``), or None."""
        return None

    def input_stats(self, ds: Any, task: Any, tokenizer: Any = None, max_seq_length: int = 0, tokenizer_name: str = "",
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """What a prepared dataset's stats (:func:`bmcore.data.stats.compute_stats`) hold about its inputs (token
        lengths, image sizes), with ``task`` saying which rows have each label."""
        return {}

    # --- predictions, evaluation and export ------------------------------------------------------------

    # True: one example is a picture (an image file's bytes), not text: predictions take image files, the Playground
    # offers pictures, an export carries an image processor.
    pictures = False
    processor_noun = "tokenizer"  # what turns raw inputs into model inputs, in a sentence ("image processor")
    # What the Train page says of models for these inputs: the built-in model's name and caption, an introduction
    # ("" for none), and a Hub model id to suggest, with more in the help ("" for none).
    builtin_title = ""
    builtin_caption = ""
    train_intro = ""
    hub_example = ""
    hub_help = ""

    def evaluation_facts(self, processor: Any) -> dict[str, Any]:
        """What an evaluation records about how its inputs were read, besides ``max_seq_length`` (images: the side
        they were resized to, ``image_size``), from the model's processor."""
        return {}
