"""Locust load tests and the TF Serving vs TorchServe comparison (``python -m loadtests compare``).

Modules, each with one job (only ``users``, ``shape`` and the two locustfiles import Locust, and they run
only inside Locust's own processes):

* ``targets``, ``endpoints`` — what is measured and where it lives;
* ``payloads``, ``checks``, ``grpc_wire`` — real MNIST digits in, answers checked (TF-free gRPC messages);
* ``users``, ``shape``, ``locustfile.py``, ``comparison_locustfile.py`` — the Locust side;
* ``recorder`` — raw per-request timings (float ms), shipped from workers to the master;
* ``plan`` — warm-up, steps, repetitions, and the sequencer that walks them;
* ``stack``, ``nullserver``, ``cpu``, ``preflight``, ``locust_run``, ``progress``, ``environment`` —
  the runner's parts;
* ``stats``, ``analysis`` — percentiles, bootstrap intervals, flags, gateway-added latency, winners;
* ``report`` — results.json, report.md, self-contained report.html with matplotlib charts;
* ``config``, ``compare``, ``__main__`` — the command line.
"""
