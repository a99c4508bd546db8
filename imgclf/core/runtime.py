"""How a job that imports TensorFlow runs: determinism, threads, devices, a quiet start.

``keras.utils.set_random_seed`` plus op determinism gives bit-identical weights across
processes on CPU, and pinning the intra- and inter-op thread counts makes 1-core and 2-core
runs identical (measured on this project's machines; docs/reproducing.md).

TensorFlow's C++ start-up notices (oneDNN, CPU features, absl's "log messages before
InitializeLog") go to the process's stderr whatever ``TF_CPP_MIN_LOG_LEVEL`` says; they are
kept out of the console and the logs (:func:`quiet_native_stderr`) unless ``IMGCLF_TF_LOGS=1``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

#: Set to 1 to see TensorFlow's own start-up messages.
VERBOSE_ENV = "IMGCLF_TF_LOGS"
#: Threads of the tf.data input pipelines of this process (:func:`configure` sets them).
_input_threads = 1


def input_threads() -> int:
    """Threads the input pipelines of this process may use: the job's CPUs left after TensorFlow's
    intra-op threads, at least 1 (1 until configured)."""
    return _input_threads


@contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Hold what C/C++ code writes to file descriptor 2 while the body runs.

    It is dropped when the body succeeds and printed when it fails (a library that cannot
    start says why there), or passed straight through when ``IMGCLF_TF_LOGS=1``.
    """
    if os.environ.get(VERBOSE_ENV) == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            held.seek(0)
            sys.stderr.write(held.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def configure(seed: int, threads: int = 1, cpus: int | None = None) -> dict[str, object]:
    """Seed every generator, enable op determinism, pin thread counts.

    Args:
        seed: The run's seed.
        threads: Intra-op threads (inter-op is pinned to 1). The same value
            must be used to reproduce a run bit for bit (the config's ``threads``).
        cpus: The CPUs the job was given (Snakemake's threads). The input pipelines get
            those left after the intra-op threads (:func:`input_threads`, at least 1): on a
            2-core laptop none are left and the pipeline shares TensorFlow's pool as before
            (a pool of its own there would only compete with training for the two cores);
            on a 16-CPU GPU node, 15 decode while 1 drives the GPU. They do not change the
            numbers. Defaults to ``threads``.

    Returns:
        The settings applied, for the run's record.
    """
    global _input_threads
    cpus = int(cpus if cpus is not None else threads)
    _input_threads = max(1, cpus - int(threads))
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ["PYTHONHASHSEED"] = str(seed)
    with quiet_native_stderr():
        import keras
        import numpy as np
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass  # already initialised in this process: the environment variables applied
        keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
        gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            try:
                # Take GPU memory as needed: several jobs may share a GPU on a workstation.
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass
    import platform

    from imgclf.core.environment import cpu_model

    return {"seed": seed, "intra_op_threads": threads, "inter_op_threads": 1, "cpus": cpus,
            "input_threads": _input_threads, "op_determinism": True, "tensorflow": tf.__version__, "keras": keras.__version__,
            # Where the job ran: on a cluster, not the machine that made the report.
            "host": platform.node(), "cpu": cpu_model(), "numpy": np.__version__,
            "gpus": [gpu.name for gpu in gpus],
            # What SLURM (or the user) gave this job; TensorFlow sees only these devices.
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def visible_gpus() -> list[str]:
    """The GPUs TensorFlow sees in this process."""
    import tensorflow as tf

    return [gpu.name for gpu in tf.config.list_physical_devices("GPU")]


def set_precision(mixed: bool, gpus: list[str], log: object = None) -> str:
    """Set Keras's global dtype policy before a model is built.

    Args:
        mixed: ``train.mixed_precision``.
        gpus: The GPUs this job sees (:func:`configure`'s ``gpus``).
        log: Where to warn when mixed precision is asked for without a GPU.

    Returns:
        The policy's name: ``mixed_float16`` on a GPU when asked, else ``float32``.
    """
    import keras

    policy = "mixed_float16" if mixed and gpus else "float32"
    if mixed and not gpus and log is not None:
        log.warning("train.mixed_precision is set, but this job sees no GPU: training in float32")
    keras.mixed_precision.set_global_policy(policy)
    return policy


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
