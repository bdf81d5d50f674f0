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
import weakref
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


_CODE_HASHES: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def plugin_code_hash(cls: type[Plugin]) -> str:
    """Hash of the source code of the plugin class, its non-framework base classes, and of what
    it lists in ``code_dependencies`` (e.g. the kernel modules it calls).

    Computed once per class object: a class redefined in a notebook cell is a new object.
    """
    cached = _CODE_HASHES.get(cls)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    parts: list[Any] = [k for k in cls.__mro__ if k not in _FRAMEWORK_CLASSES]
    parts += list(getattr(cls, "code_dependencies", ()))
    for part in parts:
        try:
            digest.update(inspect.getsource(part).encode())
        except (OSError, TypeError):
            # Source unavailable (e.g. built with exec): hash the compiled code instead.
            items = vars(part).items() if isinstance(part, type) else [("", part)]
            for name, value in sorted(items, key=lambda kv: kv[0]):
                code = getattr(getattr(value, "py_func", value), "__code__", None)
                if code is not None:
                    digest.update(name.encode() + code.co_code + repr(code.co_consts).encode())
    result = digest.hexdigest()[:16]
    _CODE_HASHES[cls] = result
    return result


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
