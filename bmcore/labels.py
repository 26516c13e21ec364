"""How several labels are written in one cell: the delimiters a multi-label column may use.

A leaf module (it imports nothing of bmcore), so the config and the data readers can both name it.
"""

LABEL_DELIMITERS = ("json", ",", ";", "|")  # "json": each cell is a JSON list of names
