"""moto_server with one request at a time.

moto's DynamoDB backend takes no lock, so two concurrent conditional writes
can both pass their condition, something real DynamoDB never allows. The
tests race conditional writes on purpose (dedup claims, ticket sequence,
conversation versions), so the stand-in must serialise requests the way the
real service serialises writes to one item. Connections are still accepted
on threads; only the handling of each request holds the lock.

Usage: moto_serve.py HOST PORT
"""

import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def serialised(app):
    lock = threading.Lock()

    def handle(environ, start_response):
        with lock:
            # Read the whole body inside the lock: a lazy iterable would run
            # the backend after the lock is released.
            return list(app(environ, start_response))

    return handle


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        host,
        port,
        serialised(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
