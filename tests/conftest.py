"""Suite-wide settings: tests run small networks, for which one torch thread is fastest and
keeps timings stable on the 2-core CI machine; caches go to a temporary folder, never to the
user's home (subprocesses inherit it)."""

import atexit
import os
import shutil
import tempfile

import torch

torch.set_num_threads(1)
_CACHE = tempfile.mkdtemp(prefix="sparsetopo-test-cache-")
os.environ["SPARSETOPO_CACHE_DIR"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)  # no folder left per run
