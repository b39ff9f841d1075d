"""Errors of the local serving layer.

ServingError           base class
├── ServerStartError   a server did not become ready (carries the relevant log lines)
└── PortInUse          a port a server needs is taken (serving.ports)
"""


class ServingError(RuntimeError):
    """Base class of serving errors."""


class ServerStartError(ServingError):
    """A server did not become ready; the message carries the relevant log lines."""
