"""One client of our embedding server's HTTP API, and the server as a child process.

``rag``, ``finetune`` and ``bench`` talk to the server through this package (the bench's
load generator keeps its own lower-overhead client, see ``bench/loadgen.py``). It imports
nothing of ``server``, ``rag``, ``bench``, ``finetune`` or ``export``: it knows the server
by its wire contract only.

- :mod:`embedclient.client`: :class:`Client` (``info``, ``embed``, ``tokenize``) and its
  retry policy :class:`Retry`;
- :mod:`embedclient.errors`: the exceptions, and the parser of both error envelopes;
- :mod:`embedclient.process`: :class:`ServerProcess`, :func:`wait_ready`, :func:`free_port`.
"""

from embedclient.client import Api, Client, Info, Retry
from embedclient.errors import ApiError, ClientError, NotOurServer, ServerStartError, TransportError
from embedclient.process import ServerProcess, free_port, server_command, wait_ready

__all__ = [
    "Api",
    "ApiError",
    "Client",
    "ClientError",
    "Info",
    "NotOurServer",
    "Retry",
    "ServerProcess",
    "ServerStartError",
    "TransportError",
    "free_port",
    "server_command",
    "wait_ready",
]
