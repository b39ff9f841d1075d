"""What the gateway itself costs and how it behaves under faults, measured on servers it starts.

``python -m gatewaybench bench`` (``make bench-gateway``) times the gateway against a bare proxy in the
same run; ``python -m gatewaybench soak`` (``make soak``) holds load through it while servers fail.
The comparison of the serving stacks is :mod:`loadtests`; this package reuses its stack start-up,
CPU accounting, payloads and wire codecs.
"""
