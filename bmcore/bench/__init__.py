"""``python -m bmcore bench``: speed measured side by side, in one process, against what users would otherwise run.

Ratios, not seconds, are the result: the machines are noisy, so every comparison runs its two
sides back to back in the same process on the same model folder and the same texts. One module a part:

* :mod:`.training` - training samples/s, tokens/s and MFU: the tutorial loop, ``Trainer`` (fp32 and at its
  best) and bmcore's job, on short and long texts;
* :mod:`.accuracy` - time to SST-2 dev accuracy, ``trainer-best`` against bmcore, per seed;
* :mod:`.images` - image training samples/s, bmcore against the plain ``Trainer`` recipe on Fashion-MNIST;
* :mod:`.inference` - Playground latency and evaluation throughput, bmcore against ``transformers.pipeline``;
* :mod:`.suite` - ``run_bench``: the parts in turn and the summary line;

with :mod:`.texts` (what they measure on), :mod:`.measure` (latencies, peak memory, quiet logs) and :mod:`.peak`
(the matmul peak, the denominator of MFU).
"""
