"""Runs localstripe (GPL, its own virtualenv, never imported by finsync) on loopback only,
without its pickle: `python localstripe_launcher.py PORT`.

localstripe re-saves its whole state to a fixed /tmp/localstripe.pickle on every write,
shared by every instance on the machine; the tests start from scratch and keep state in
memory only, so saving is switched off here.
"""

import sys

from aiohttp import web
from localstripe.resources import Store
from localstripe.server import app

Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
