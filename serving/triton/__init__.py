"""Triton Inference Server 2.51 (the ``tritonserver`` binary shipped in the ``nvidia-pytriton`` wheel).

The model runs through Triton's Python backend via PyTriton: Triton's C++ HTTP/gRPC frontends and
dynamic batcher take the requests, the Python backend stub hands each batch to the PyTriton
process, which runs the store's TorchScript with torch (CPU). Production Triton would load the
TorchScript with its libtorch backend, which is not installable from a wheel here.

``environment`` builds the virtual environment the server runs in (``build/triton-venv``),
``server`` is the process started there, ``launcher`` starts, checks and records it for
``python -m serving up | status | down``.
"""
