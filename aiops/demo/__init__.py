"""The demo workload of ``aiops up``: what to watch when no Prometheus is configured.

* :mod:`aiops.demo.workload`: request rates, latencies, error rates and queue depths as a
  deterministic, seeded function of time, with a daily shape and injected incidents.
* :mod:`aiops.demo.logs`: the log lines the same workload writes.
* :mod:`aiops.demo.exporter`: the process serving the metrics and writing the log file
  (``python -m aiops.demo serve``).
* :mod:`aiops.demo.stack`: the demo's state, its history in Prometheus, its config file.

Pure core: no Prefect, no Starlette. See ``docs/demo.md``.
"""
