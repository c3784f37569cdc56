"""gunicorn.conf.py, as gunicorn reads it from the working directory (scripts/run.sh, the Docker image)."""

from __future__ import annotations

import gc
import runpy

from tests.conftest import ROOT


def test_a_worker_freezes_the_loaded_application_out_of_the_garbage_collector():
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    gc.unfreeze()
    try:
        config["post_worker_init"](None)  # what gunicorn calls in each worker once the app is loaded
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
