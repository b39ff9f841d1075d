"""Locust load tests and the TF Serving vs TorchServe comparison (``python -m loadtests compare``).

Modules, each with one job (only ``users``, ``shape`` and the two locustfiles import Locust, and they run
only inside Locust's own processes):

* ``targets`` — what is measured and at which address (:mod:`serving.endpoints`);
* ``payloads``, ``checks``, ``grpc_wire`` — real MNIST digits in, answers checked (TF-free gRPC messages);
* ``users``, ``shape``, ``locustfile.py``, ``comparison_locustfile.py`` — the Locust side;
* ``recorder`` — raw per-request timings (float ms), shipped from workers to the master;
* ``plan`` — warm-up, steps, repetitions, and the sequencer that walks them;
* ``preflight``, ``locust_run``, ``progress``, ``environment`` — the runner's parts (it starts servers
  through :mod:`serving.stack`, pins them with :mod:`serving.cpu`, calibrates on
  :mod:`serving.nullserver`);
* ``stats``, ``analysis`` — percentiles, bootstrap intervals, flags, gateway-added latency, winners;
* ``report`` — results.json, report.md, self-contained report.html with matplotlib charts;
* ``config``, ``compare``, ``__main__`` — the command line.
"""
