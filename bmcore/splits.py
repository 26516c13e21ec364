"""Names of what was scored: a split, or a whole source.

A leaf module (it imports nothing of bmcore), so the tasks, the scoring of whole sources and the page content can all
name it without a circle.
"""

WHOLE_SOURCE = "all"  # the split name of a source scored whole (bmcore.scoring: every image of a folder or zip)


def examples_of(split: str) -> str:
    """'test examples', or plain 'examples' for a source scored whole (never 'all examples')."""
    return "examples" if split == WHOLE_SOURCE else f"{split} examples"
