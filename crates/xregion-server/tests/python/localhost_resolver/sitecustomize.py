"""Resolves every name under `.localhost` to the loopback address, for the test's Python
processes (boto3 and the AWS CLI), which find it through PYTHONPATH.

Names under `.localhost` are loopback (RFC 6761), and systemd-resolved and curl resolve
them so; the C library of a plain Debian machine (and CI) does not. S3 Control clients
address `<account id>.<endpoint host>` (`123456789012.localhost`), so without this the tests
would depend on the machine's resolver rather than on xregion.
"""

import socket

_getaddrinfo = socket.getaddrinfo


def _loopback_localhost(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_localhost
