"""Locustfile: one User class per target, usable on its own.

    locust -f loadtests/locustfile.py        # web UI on :8089: pick the classes and addresses there
    locust -f loadtests/locustfile.py --headless -u 4 -t 20s TorchServeRestUser \\
        --torchserve-url http://127.0.0.1:8080 --torchserve-key-file run/torchserve/key_file.json

Addresses default to what ``make serve`` and ``make gateway`` start; the options are defined in
``loadtests/users.py`` (the web UI shows them as custom parameters), each also settable as
``LOADTEST_<OPTION>``. ``python -m loadtests compare`` runs all of them in turn
with ``loadtests/comparison_locustfile.py``, which adds the comparison's load shape.
"""

from loadtests.users import USER_CLASSES

globals().update(USER_CLASSES)  # Locust collects the User classes it finds in this module
__all__ = list(USER_CLASSES)
