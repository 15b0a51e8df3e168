"""The library called from several threads at once gives the serial results: building seeded
networks, pruning them, tracing and encoding them (``analysis.build_network`` and every
encoder). Each check runs in a subprocess, so that an interpreter abort is a test failure rather
than a killed test session."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch

    import sparsetopo as st
    from sparsetopo.analysis import build_network

    SHAPE = (3, 16, 16)
    CASES = [("resnet20", "snip", 0), ("resnet20", "magnitude", 1), ("conv6", "uniform", 2),
             ("resnet20", "erk", 3), ("mlp", "snip", 4), ("resnet20", "snip", 5)]

    def digest(*arrays):
        h = hashlib.sha256()
        for a in arrays:
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    def batches(seed):
        g = torch.Generator().manual_seed(seed)
        return [(torch.randn(16, *SHAPE, generator=g), torch.randint(0, 10, (16,), generator=g))
                for _ in range(2)]

    def one(case):
        name, method, seed = case
        size = {"image_size": 16} if name in ("conv6", "mlp") else {}
        model = st.models.create(name, num_classes=10, in_channels=3, seed=seed, **size)
        masks = st.pruning.prune(model, method, 0.9, data=batches(seed), seed=seed,
                                 input_shape=SHAPE)
        g = st.encoding.multipartite(model, SHAPE, identity_skips=True)
        parts = [digest(*(m.numpy() for m in masks.values())),
                 digest(g.adjacency.indptr, g.adjacency.indices, g.adjacency.data)]
        for graphs in (st.encoding.unrolled(model, SHAPE), st.encoding.rolled(model),
                       st.encoding.rolled_channel(model)):
            parts.append(digest(*(x for b in graphs
                                  for x in (b.adjacency.indices, b.adjacency.data))))
        net = build_network("conv6", "snip", 0.95, seed, "synthetic", None, quiet=True,
                            input_size=16)
        parts.append(digest(*(m.numpy() for m in st.pruning.get_masks(net.model).values())))
        return parts

    serial = [one(c) for c in CASES]
    with ThreadPoolExecutor(max_workers=len(CASES)) as pool:
        threaded = list(pool.map(one, CASES))
    assert threaded == serial, [i for i, (a, b) in enumerate(zip(threaded, serial)) if a != b]
    print("same")
    """
)


@pytest.mark.slow
def test_prune_and_encoders_from_a_thread_pool_give_the_serial_results(tmp_path):
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "same", (done.returncode,
                                                                     done.stderr[-3000:])


def test_importing_the_library_changes_no_process_wide_torch_state(tmp_path):
    """Importing every unit leaves torch's thread count, global generator and deterministic
    flag as they were."""
    code = textwrap.dedent(
        """
        import torch
        before = (torch.get_num_threads(), torch.random.get_rng_state().clone(),
                  torch.are_deterministic_algorithms_enabled())
        import sparsetopo.analysis, sparsetopo.cli, sparsetopo.report  # noqa: F401
        import sparsetopo.study.fit, sparsetopo.study.runner  # noqa: F401
        after = (torch.get_num_threads(), torch.random.get_rng_state(),
                 torch.are_deterministic_algorithms_enabled())
        assert before[0] == after[0] and before[2] == after[2]
        assert torch.equal(before[1], after[1])
        print("same")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "same", done.stderr[-3000:]
