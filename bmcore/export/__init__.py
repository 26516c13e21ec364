"""Ship a finished run: a zip of its model, a model card, ONNX with a parity check, and a push to the Hub.

Everything works on a completed run folder (see :mod:`bmcore.runs`) and writes under it, one module a job:

* :mod:`.run` - the finished run an export starts from, and where its exports go (``<run>/export/``);
* :mod:`.card` - ``model/README.md``, the model card (Hugging Face YAML metadata, data, hyperparameters,
  test metrics next to the baseline); also written when a training run completes;
* :mod:`.bundle` - ``export/<run>-model.zip``, the ``model/`` folder, loadable by ``transformers.pipeline``
  once unzipped;
* :mod:`.onnx` - ``export/onnx/``: ``model.onnx`` (fp32, dynamic batch and sequence axes) with the tokenizer
  and config beside it, and ``parity.json``: ONNX Runtime's logits against PyTorch's on the test split;
* :mod:`.hub` - the push of ``model/`` to a Hugging Face Hub model repo.

What the pages show about an export (the command, the parity sentence) is in :mod:`bmcore.report.export`.
"""
