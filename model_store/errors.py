"""Errors raised by the model store.

StoreError            base class: something about the store is wrong
├── StoreNotWritable  the store path cannot be written (checked before any training)
├── VersionNotFound   a version that is not in the store was asked for
└── IntegrityError    an artifact is missing, truncated or altered (names the file)
"""


class StoreError(Exception):
    """Base class of every model store error."""


class StoreNotWritable(StoreError):
    """The store directory cannot be created or written."""


class VersionNotFound(StoreError):
    """The requested model version does not exist."""


class IntegrityError(StoreError):
    """An artifact does not match the checksum recorded in the manifest."""
