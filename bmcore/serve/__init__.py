"""The prediction server: ``python -m bmcore serve --model RUN_OR_DIR [--host] [--port] [--onnx]``.

An HTTP API on FastAPI and uvicorn that speaks the Hugging Face Inference API's request and answer shapes, so
``huggingface_hub.InferenceClient(base_url=...)`` calls it unchanged. One job per module:

- :mod:`~bmcore.serve.limits`: every limit with its default and variable, printed at start;
- :mod:`~bmcore.serve.inputs`: a body read into inputs and parameters, or refused with a 4xx and one line;
- :mod:`~bmcore.serve.scorer`: the model (PyTorch through :mod:`bmcore.inference`, or ONNX Runtime);
- :mod:`~bmcore.serve.batcher`: dynamic batching on one model worker thread;
- :mod:`~bmcore.serve.shapes`: logits into the answer's ``{"label", "score"}`` lists, by the model's task;
- :mod:`~bmcore.serve.service`: what each route does (key, concurrency, body limits, scoring);
- :mod:`~bmcore.serve.app`: the FastAPI wiring and JSON errors; :mod:`~bmcore.serve.server`: binding and uvicorn.
"""
