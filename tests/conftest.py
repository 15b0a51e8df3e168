"""Suite-wide settings: tests run small networks, for which one torch thread is fastest and
keeps timings stable on the 2-core CI machine; caches go to a temporary folder, never to the
user's home (subprocesses inherit it)."""

import os
import tempfile

import torch

torch.set_num_threads(1)
os.environ["SPARSETOPO_CACHE_DIR"] = tempfile.mkdtemp(prefix="sparsetopo-test-cache-")
