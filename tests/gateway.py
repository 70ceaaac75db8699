"""A local client that tries a py4j gateway without its token, or with a guessed one."""

import pytest
from py4j.java_gateway import GatewayParameters, JavaGateway


def assert_turned_away(port: int) -> None:
    """A client with no token, then one with a guessed token, cannot run Java through the gateway on ``port``."""
    for params in (GatewayParameters(address="127.0.0.1", port=port),
                   GatewayParameters(address="127.0.0.1", port=port, auth_token="guessed")):
        intruder = JavaGateway(gateway_parameters=params)
        try:
            with pytest.raises(Exception, match="(?i)authenticat"):
                intruder.jvm.java.lang.System.getenv("HOME")
        finally:
            intruder.close()
