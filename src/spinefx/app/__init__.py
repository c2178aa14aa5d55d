"""spinefx.app: the concept visualisation web app (FastAPI + one HTML page), a thin shell over
:mod:`spinefx.reporting`. Start it with ``spinefx app RUN_DIR``.
"""

from spinefx.app.server import create_app, token_headers

__all__ = ["create_app", "token_headers"]
