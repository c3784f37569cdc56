"""`manage.py runserver` that closes a client thread's database connections when the client goes.

Django's development server (django.core.servers.basehttp.run) serves each client connection on a
thread of its own, built from the plain WSGIServer: nothing closes that thread's database connection
when the thread ends. With persistent connections (DB_CONN_MAX_AGE above 0) the request leaves it
open, and the connection object of a finished thread sits in a reference cycle until a full garbage
collection, so every new client left one more PostgreSQL connection open until `max_connections` ran
out. Django's own test server (ThreadedWSGIServer, used by LiveServerTestCase) closes them in
close_request, in the client's thread; this server does the same.
"""

from __future__ import annotations

from django.contrib.staticfiles.management.commands.runserver import Command as StaticFilesRunserver
from django.core.servers.basehttp import WSGIServer
from django.db import connections


class ConnectionClosingWSGIServer(WSGIServer):
    def close_request(self, request) -> None:
        # Called in the thread that served the client (socketserver.ThreadingMixIn), once it is done.
        connections.close_all()
        super().close_request(request)


class Command(StaticFilesRunserver):
    server_cls = ConnectionClosingWSGIServer
