"""The interface every modality implements (:class:`Modality`); see :mod:`bmcore.modalities`."""

from __future__ import annotations

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

    # True: one example is a picture (an image file's bytes), not text: predictions take image files, the Playground
    # offers pictures, an export carries an image processor.
    pictures = False
    processor_noun = "tokenizer"  # what turns raw inputs into model inputs, in a sentence ("image processor")

    def evaluation_facts(self, processor: Any) -> dict[str, Any]:
        """What an evaluation records about how its inputs were read, besides ``max_seq_length`` (images: the side
        they were resized to, ``image_size``), from the model's processor."""
        return {}
