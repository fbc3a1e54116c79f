"""Model zoo: official URLs, sha256 and licences of evaluator weights, and our checkpoints (files shipped in
`models/` or added by the user, grouped into models); download, verify, cache.

Metrics call `resolve(name)`, which never downloads: a missing file raises `MissingWeights` naming the command
(`vlogger zoo fetch NAME` or `vlogger zoo add-local NAME PATH`) that puts it in place.
"""

from vlogger.zoo.fetch import add_local, cached, fetch, get_entry, resolve, sha256_file
from vlogger.zoo.models import ModelFiles, model_files, verified, verify
from vlogger.zoo.registry import MissingWeights, ZooEntry, ZooError, cache_dir, load_registry

__all__ = [
    "MissingWeights",
    "ModelFiles",
    "ZooEntry",
    "ZooError",
    "add_local",
    "cache_dir",
    "cached",
    "fetch",
    "get_entry",
    "load_registry",
    "model_files",
    "resolve",
    "sha256_file",
    "verified",
    "verify",
]
