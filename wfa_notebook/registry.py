"""Plugin registry and option resolution: which plugin provides what, configured how."""
from __future__ import annotations

import difflib
from typing import Any

from .errors import WfaConfigError, WfaPluginError
from .plugins.base import Plugin
from .plugins.options import REQUIRED

__all__ = ["PluginRegistry", "configure_plugin", "check_config_keys"]


class PluginRegistry:
    """Maps each data type to the plugin class that provides it."""

    def __init__(self) -> None:
        self.providers: dict[str, type[Plugin]] = {}

    def copy(self) -> PluginRegistry:
        other = PluginRegistry()
        other.providers = dict(self.providers)
        return other

    def register(self, plugin: type[Plugin]) -> None:
        """Validate ``plugin``'s declarations and make it the provider of its data type."""
        if isinstance(plugin, Plugin):
            plugin = type(plugin)
        if not (isinstance(plugin, type) and issubclass(plugin, Plugin)):
            msg = (
                f"register() takes Plugin subclasses; got {plugin!r} of type {type(plugin).__name__}. "
                "Pass the class itself, e.g. context.register(MyPlugin)."
            )
            raise WfaPluginError(msg)
        plugin.validate_declaration()
        # A newer registration of the same data type replaces the older one, as in a notebook
        # where a plugin cell is edited and run again.
        self.providers[plugin.provides] = plugin

    def option_owners(self) -> dict[str, list[str]]:
        """Option name -> data types whose plugin has an option of that name."""
        owners: dict[str, list[str]] = {}
        for data_type, cls in self.providers.items():
            for name in cls.options():
                owners.setdefault(name, []).append(data_type)
        return owners


def check_config_keys(config: dict[str, Any], registry: PluginRegistry) -> None:
    """Raise for config keys that match no option of any registered plugin (likely typos)."""
    owners = registry.option_owners()
    for key, value in config.items():
        if key in registry.providers and isinstance(value, dict):
            options = registry.providers[key].options()
            for sub in value:
                if sub not in options:
                    _unknown(f"{key}.{sub}", sub, list(options), f"plugin {registry.providers[key].__name__}")
        elif key not in owners:
            _unknown(key, key, list(owners), "any registered plugin")


def _unknown(shown: str, key: str, known: list[str], where: str) -> None:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    msg = f"Config key {shown!r} is not an option of {where}.{hint} Known options: {sorted(known)}."
    raise WfaConfigError(msg)


def configure_plugin(cls: type[Plugin], config: dict[str, Any], run_id: str, context: Any) -> Plugin:
    """A new instance of ``cls`` with its options taken from ``config``.

    A per-plugin entry (``config[data_type][option]``) wins over a global one (``config[option]``).
    """
    plugin = cls()
    plugin.run_id = run_id
    plugin.context = context
    own = config.get(cls.provides)
    own = own if isinstance(own, dict) else {}
    values: dict[str, Any] = {}
    for name, opt in cls.options().items():
        if name in own:
            values[name] = opt.validate(own[name], cls.__name__)
        elif name in config:
            values[name] = opt.validate(config[name], cls.__name__)
        elif opt.default is not REQUIRED:
            values[name] = opt.default
    plugin._option_values = values
    for name in cls.options():
        getattr(plugin, name)  # raises a clear error for a required option left unset
    return plugin
