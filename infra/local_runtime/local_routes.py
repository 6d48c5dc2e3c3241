"""Routes that exist only on the local stack (/local/*), behind the same authorizer.

They are registered by the local runtime onto the app it serves, so the
deployed API has none of them and app.py never refers to them.
"""

from __future__ import annotations

import json
from typing import Any

from chalice import Blueprint, Response

from chalicelib.auth import ADMIN, requires
from infra.local_runtime.ses_outbox import OUTBOX


def register_local_routes(app: Any, authorizer: Any) -> None:
    local = Blueprint(__name__)

    @local.route("/local/outbox", methods=["GET"], authorizer=authorizer)
    @requires(ADMIN)  # the messages' unsubscribe links act for their recipients
    def outbox() -> Response:
        """What SES sent, newest last, so a person can click the tracked links; ?from=N: from the N-th on."""
        start = (local.current_request.query_params or {}).get("from", "0")
        if not (start.isascii() and start.isdigit()):
            return Response(body=json.dumps({"error": "invalid_request", "message": "from must be a whole number"}),
                            status_code=400, headers={"Content-Type": "application/json"})
        body = [message.to_dict() for message in OUTBOX.messages()[int(start):]]
        return Response(body=json.dumps(body), status_code=200, headers={"Content-Type": "application/json"})

    app.register_blueprint(local)
