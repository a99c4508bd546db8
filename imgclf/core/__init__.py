"""The core every stage may use, and that uses no stage: config, errors, io, job, runtime,
environment, findings, timing."""
