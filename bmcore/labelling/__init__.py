"""The labelling loop: label texts in the browser while a few-shot model, retrained after each batch, picks what to
label next; and the simulation that shows whether its picking helps.

One job per module:

* :mod:`~bmcore.labelling.sources` - the texts to label, read from an upload or a file;
* :mod:`~bmcore.labelling.project` - a project's folder (``<workspace>/labelling/NAME/``): texts, classes, and every
  label as it was given, append-only and fsynced;
* :mod:`~bmcore.labelling.picking` - what to label next: uncertainty weighted by density, random, the cold start;
* :mod:`~bmcore.labelling.step` - the loop's step (the job ``label-step``): train SetFit on the labels, measure it on
  held-out labels, pick the next batch; ``picks.json`` and ``curve.jsonl``;
* :mod:`~bmcore.labelling.export` - the labelled rows saved as an ordinary prepared dataset, versioned;
* :mod:`~bmcore.labelling.simulate` - a labelled dataset's labels hidden and revealed as each strategy asks
  (the job ``label-simulate``).

What the page shows of them is :mod:`bmcore.report.labelling`. Each name is imported from its module.
"""
