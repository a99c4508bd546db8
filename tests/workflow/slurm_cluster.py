"""A real single-node SLURM cluster for the tests: Debian's slurmctld, slurmd and munge.

As measured on this project's machines, SLURM 22.05 runs as root without systemd or cgroups with proctrack/linuxproc
and task/none; a fake GPU is a gres with File=/dev/null. Everything lives under one
temporary folder, on ports of its own and with its own munge socket and key, so that a
cluster of another session on the same machine neither receives these jobs nor sends
its own. Client commands find this cluster through ``SLURM_CONF`` (see :meth:`env`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_programs() -> list[str]:
    """SLURM and munge programs absent from this machine."""
    return [p for p in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")
            if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmCluster:
    """Start with :meth:`start`, stop with :meth:`stop`; jobs see ``gpus`` fake GPUs."""

    def __init__(self, base: Path, cpus: int | None = None, gpus: int = 2) -> None:
        self.base = base
        self.cpus = cpus or os.cpu_count() or 2
        self.gpus = gpus
        self.conf = base / "slurm.conf"
        self.processes: list[subprocess.Popen] = []

    def env(self) -> dict[str, str]:
        """The environment of a client of this cluster (sbatch, squeue, snakemake)."""
        return dict(os.environ, SLURM_CONF=str(self.conf),
                    PATH=f"{self.base / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")

    def _write_srun_shim(self) -> None:
        # snakemake-executor-plugin-slurm-jobstep 0.6 removes every SLURM_* variable before
        # its `srun` inside a job, SLURM_CONF included; real clusters keep their config where
        # srun finds it without one (/etc/slurm, or configless), this test cluster cannot.
        shim = self.base / "bin" / "srun"
        shim.parent.mkdir(parents=True, exist_ok=True)
        shim.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec {shutil.which("srun") or "/usr/bin/srun"} "$@"\n')
        shim.chmod(0o755)

    def _write_config(self) -> None:
        base = self.base
        for name in ("state", "spool", "munge"):
            (base / name).mkdir(parents=True, exist_ok=True)
        memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.8)
        devices = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random"]
        if not 0 < self.gpus <= len(devices):
            raise ValueError(f"1 to {len(devices)} fake GPUs, not {self.gpus}")
        devices = devices[: self.gpus]
        self.conf.write_text("\n".join([
            "ClusterName=imgclftest",
            "SlurmctldHost=localhost",
            f"SlurmctldPort={free_port()}",
            f"SlurmdPort={free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={base / 'munge/munge.socket'}",
            f"StateSaveLocation={base / 'state'}",
            f"SlurmdSpoolDir={base / 'spool'}",
            f"SlurmctldPidFile={base / 'slurmctld.pid'}",
            f"SlurmdPidFile={base / 'slurmd.pid'}",
            f"SlurmctldLogFile={base / 'slurmctld.log'}",
            f"SlurmdLogFile={base / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "GresTypes=gpu",
            "ReturnToService=2",
            "MpiDefault=none",
            "JobCompType=jobcomp/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "DefMemPerCPU=500",
            "MinJobAge=600",  # finished jobs stay visible to squeue (no accounting database here)
            "KillWait=5",
            "OverTimeLimit=0",
            "InactiveLimit=0",
            "SlurmdTimeout=60",
            # The node may declare more CPUs than the machine has (tests overlap waiting jobs).
            "SlurmdParameters=config_overrides",
            f"NodeName=localhost CPUs={self.cpus} RealMemory={memory_mb} Gres=gpu:{self.gpus} State=UNKNOWN",
            "PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP",
            ""]))
        (base / "gres.conf").write_text("".join(f"NodeName=localhost Name=gpu File={d}\n" for d in devices))
        key = base / "munge/munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)

    def _spawn(self, *command: str) -> None:
        log = open(self.base / f"{Path(command[0]).name}.out", "w")  # noqa: SIM115 (kept open for the daemon)
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env(),
                                               start_new_session=True))

    def start(self, timeout: float = 60) -> None:
        """Start munge, the controller and the node; wait until the node is idle."""
        self._write_config()
        self._write_srun_shim()
        munge = self.base / "munge"
        self._spawn(_program("munged"), "--foreground", "--force", f"--socket={munge / 'munge.socket'}",
                    f"--key-file={munge / 'munge.key'}", f"--pid-file={munge / 'munged.pid'}",
                    f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'munged.seed'}")
        self._wait(lambda: (munge / "munge.socket").exists(), 15, "munged did not start")
        self._spawn(_program("slurmctld"), "-D", "-i", "-f", str(self.conf))
        self._spawn(_program("slurmd"), "-D", "-N", "localhost", "-f", str(self.conf))

        def idle() -> bool:
            result = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env())
            return result.returncode == 0 and result.stdout.strip() in ("idle", "mixed", "allocated")
        self._wait(idle, timeout, "the SLURM node did not become idle")

    def _wait(self, ready, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if any(p.poll() is not None for p in self.processes):
                break
            time.sleep(0.5)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.base.glob("*.out"))
                         + sorted(self.base.glob("*.log")) if p.is_file())
        self.stop()
        raise RuntimeError(f"{message}\n{logs}")

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller remembers (finished ones too, for MinJobAge): id, name, state,
        comment (the Snakemake plugin's rule and wildcards) and the TRES asked per job (GPUs)."""
        out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True, env=self.env()).stdout
        jobs = []
        for line in out.splitlines():
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            if "JobId" in fields:
                jobs.append({"id": fields["JobId"], "name": fields.get("JobName", ""),
                             "state": fields.get("JobState", ""), "comment": fields.get("Comment", ""),
                             "tres_per_job": fields.get("TresPerJob", "")})
        return jobs

    def stop(self) -> None:
        """Cancel every job and stop the daemons."""
        subprocess.run(["scancel", "--full", "-u", "root"], capture_output=True, env=self.env())
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()
