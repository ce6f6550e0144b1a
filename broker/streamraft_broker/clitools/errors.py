"""The one error a client command raises for a cluster that answered badly or not at all (exit 1);
ConfigError stays for bad usage (exit 2)."""


class CommandError(Exception):
    pass
