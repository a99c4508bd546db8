"""Determinism and thread settings, applied before TensorFlow starts.

FACTS.md: ``keras.utils.set_random_seed`` plus op determinism gives
bit-identical weights across processes on CPU, and pinning the intra- and
inter-op thread counts makes 1-core and 2-core runs identical.
"""

from __future__ import annotations

import os


def configure(seed: int, threads: int = 1) -> dict[str, object]:
    """Seed every generator, enable op determinism, pin thread counts.

    Args:
        seed: The run's seed.
        threads: Intra-op threads (inter-op is pinned to 1). The same value
            must be used to reproduce a run bit for bit.

    Returns:
        The settings applied, for the run's record.
    """
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["PYTHONHASHSEED"] = str(seed)
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process: the environment variables applied
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return {"seed": seed, "intra_op_threads": threads, "inter_op_threads": 1,
            "op_determinism": True, "tensorflow": tf.__version__, "keras": keras.__version__}


def memory_mb() -> dict[str, float]:
    """This process's resident memory now and at its peak, in MB (Linux /proc; else the peak only)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)
    now = peak
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    now = int(line.split()[1]) / 1024
    except OSError:
        pass
    return {"rss_mb": round(now, 1), "peak_rss_mb": round(peak, 1)}
