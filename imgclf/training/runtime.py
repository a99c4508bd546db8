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
