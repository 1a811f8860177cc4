"""The base of every failure whose message is written for the operator.

Bad config, a missing model or data file, an unreachable broker: each layer raises its
own subclass (``ConfigError``, ``ModelNotFound``, ``stream.kafka_io.BrokerUnavailable``,
...), and the CLI turns any of them into one ``rlog: error: ...`` line and exit code 2
without having to import the layer that raised it.
"""


class RlogError(Exception):
    """A failure the operator can act on; ``str(e)`` says what is wrong and how to fix it."""
