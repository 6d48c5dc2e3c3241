"""moto as a server on 127.0.0.1, quiet."""

from __future__ import annotations

import logging

from moto.server import ThreadedMotoServer


def start_moto(host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadedMotoServer, str]:
    """Start moto in a thread; returns the server and its endpoint URL."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError("the embedded AWS listens on loopback only")
    for name in ("werkzeug", "moto"):  # moto's server logs every request
        logging.getLogger(name).setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return server, f"http://{bound_host}:{bound_port}"
