"""Loaded by Python at start-up when this folder is on PYTHONPATH: refuses outbound connections.

Any connect() to an address outside loopback raises, and is reported on stderr as NETGUARD, so a
test can prove that nothing (telemetry, hub checks, analytics) tried to reach the network.
"""

import ipaddress
import socket
import sys

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _allowed(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name that would need DNS


def _guard(method):
    def connect(self, address):
        if not _allowed(address):
            print(f"NETGUARD: blocked connect to {address!r}", file=sys.stderr, flush=True)
            raise OSError(101, "Network is unreachable (blocked by docqa's test guard)")
        return method(self, address)

    return connect


socket.socket.connect = _guard(_real_connect)
socket.socket.connect_ex = _guard(_real_connect_ex)

_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, *args, **kwargs):
    if host not in (None, "localhost", "127.0.0.1", "::1", "0.0.0.0") and not str(host).startswith("127."):
        print(f"NETGUARD: blocked DNS lookup of {host!r}", file=sys.stderr, flush=True)
        raise socket.gaierror(-3, "DNS blocked by docqa's test guard")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo
