"""Dependency resolution and lineage hashing.

The lineage of a data type is everything that decides its content: the plugin's name, version,
tracked option values and a hash of its source code, the input fingerprint of a source, and the
lineages of its dependencies. Its hash names the cache folder, so any change gives a new key.
"""
from __future__ import annotations

import base64
import hashlib
import inspect
import json
import os
from typing import Any

from .errors import WfaPluginError
from .plugins.base import Plugin, SourcePlugin
from .plugins.streaming import StreamingPlugin

__all__ = ["resolve_order", "plugin_code_hash", "plugin_lineage", "hash_lineage"]

_FRAMEWORK_CLASSES = {Plugin, SourcePlugin, StreamingPlugin, object}


def resolve_order(target: str, providers: dict[str, type[Plugin]]) -> list[str]:
    """Data types needed for ``target``, dependencies first (a topological order of the DAG)."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(data_type: str, path: tuple[str, ...]) -> None:
        if state.get(data_type) == "done":
            return
        if state.get(data_type) == "visiting":
            cycle = " -> ".join(path + (data_type,))
            msg = f"Plugins depend on each other in a cycle: {cycle}. Break it by changing depends_on."
            raise WfaPluginError(msg)
        if data_type not in providers:
            wanted_by = f" (needed by {path[-1]!r})" if path else ""
            known = ", ".join(sorted(providers)) or "none"
            msg = (
                f"No plugin provides {data_type!r}{wanted_by}. Registered data types: {known}. "
                "Register a plugin that provides it."
            )
            raise WfaPluginError(msg)
        state[data_type] = "visiting"
        for dep in providers[data_type].depends_on:
            visit(dep, path + (data_type,))
        state[data_type] = "done"
        order.append(data_type)

    visit(target, ())
    return order


def plugin_code_hash(cls: type[Plugin]) -> str:
    """Hash of the source code of the plugin class and its non-framework base classes."""
    digest = hashlib.sha256()
    for klass in cls.__mro__:
        if klass in _FRAMEWORK_CLASSES:
            continue
        try:
            digest.update(inspect.getsource(klass).encode())
        except (OSError, TypeError):
            # Source unavailable (e.g. built with exec): hash the compiled methods instead.
            for name, value in sorted(vars(klass).items()):
                code = getattr(value, "__code__", None)
                if code is not None:
                    digest.update(name.encode() + code.co_code + repr(code.co_consts).encode())
    return digest.hexdigest()[:16]


def plugin_lineage(plugin: Plugin, dependency_lineages: dict[str, Any]) -> dict[str, Any]:
    """The lineage record of one configured plugin instance."""
    cls = type(plugin)
    options = {
        name: _jsonable(getattr(plugin, name))
        for name, opt in sorted(cls.options().items())
        if opt.track
    }
    record: dict[str, Any] = {
        "data_type": cls.provides,
        "plugin": cls.__name__,
        "version": cls.__version__,
        "options": options,
        "code": plugin_code_hash(cls),
        "depends_on": {dep: dependency_lineages[dep] for dep in cls.depends_on},
    }
    if isinstance(plugin, SourcePlugin):
        record["input"] = plugin.input_fingerprint()
    return record


def hash_lineage(lineage: dict[str, Any]) -> str:
    """A short, filesystem-safe hash of a lineage record."""
    raw = json.dumps(lineage, sort_keys=True, separators=(",", ":")).encode()
    return base64.b32encode(hashlib.sha256(raw).digest()[:10]).decode().lower()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return repr(value)
