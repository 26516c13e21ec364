"""The push to the Hugging Face Hub: a finished run's ``model/`` folder (card included) as a model repo.

:func:`check_push` says at once, without the network, why a push cannot happen (offline, no token, a malformed
repo id), so a page or the CLI can refuse before any job starts.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import runs
from ..errors import BmcoreError
from ..models import hub_offline, hub_reachable
from .card import write_model_card
from .run import SKIPPED, finished_run


def check_push(repo_id: str, token: str | None = None) -> tuple[str, str]:
    """Check what a push needs without touching the network; return ``(repo_id, token)``.

    Raises a one-line :class:`BmcoreError` when the Hub is offline (``HF_HUB_OFFLINE``), when
    no token is given (``token`` or ``HF_TOKEN``), or when ``repo_id`` is not ``owner/name``.
    """
    if hub_offline():
        raise BmcoreError("cannot push to the Hugging Face Hub: offline (HF_HUB_OFFLINE is set); "
                          "download the zip instead, or unset HF_HUB_OFFLINE on a machine with network access")
    token = (token or os.environ.get("HF_TOKEN") or "").strip()
    if not token:
        raise BmcoreError("cannot push to the Hugging Face Hub without a token; give a write token "
                          "(huggingface.co/settings/tokens) in HF_TOKEN or --token")
    repo_id = (repo_id or "").strip()
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise BmcoreError(f"repo id {repo_id!r} should read owner/name, such as your-user/my-classifier")
    return repo_id, token


def push_to_hub(run: str | Path, repo_id: str, token: str | None = None, *, private: bool = True) -> str:
    """Upload a finished run's ``model/`` folder (card included) to a Hub model repo; return its URL.

    :func:`check_push` runs first, so an offline machine or a missing token fails with one
    line before any network call; an unreachable huggingface.co fails the same way.
    """
    run_dir = finished_run(run)
    repo_id, token = check_push(repo_id, token)
    if not hub_reachable():
        raise BmcoreError("cannot push to the Hugging Face Hub: huggingface.co is unreachable from here; "
                          "download the zip instead and upload it from a machine with network access")
    from huggingface_hub import create_repo, upload_folder

    write_model_card(run_dir)
    try:
        url = create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model")
        upload_folder(repo_id=repo_id, folder_path=str(run_dir / runs.MODEL_DIR), token=token, repo_type="model",
                      commit_message=f"Upload {run_dir.name} from bmcore studio", ignore_patterns=[".*", *SKIPPED])
    except Exception as exc:  # HTTP errors: a bad token, a repo of someone else's
        raise BmcoreError(f"push to {repo_id} failed: {' '.join(str(exc).split())[:200]}") from exc
    return str(url)
