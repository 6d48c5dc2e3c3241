"""The public tracking endpoints, behind app.py's routes.

Every valid hit is answered at once (302, GIF or page) and recorded as one
record in the Kinesis hit stream (or, when Kinesis fails, as its own object
in the redirection logs). Invalid, unknown or tampered tokens are
answered with a friendly page (or, for the pixel, the same GIF) and recorded
nowhere: a link that does not verify redirects nowhere.

Metrics (chalicelib/metrics.py, buffered and flushed once per request):
HitsAccepted{kind}, HitsRejected{reason} (the token's InvalidToken reason,
wrong_kind, repeated_params, unknown_link, expired, bad_params),
HitStreamPutFailures, FallbackWrites and HitsUnrecorded{kind}; answers with
a 5xx status are counted by the middleware (HttpServerErrors).
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from chalice import Response
from chalice.app import CaseInsensitiveMapping, Request

from chalicelib import metrics, tokens
from chalicelib.base_url import public_base_url, stage_prefix
from chalicelib.data import aws
from chalicelib.data.addresses import AddressStore
from chalicelib.data.deliveries import DeliveryStore
from chalicelib.data.hit_stream import put_hit
from chalicelib.data.redirection_logs import put_fallback
from chalicelib.hits import pages
from chalicelib.hits.config import get_hit_config
from chalicelib.hits.link_cache import LinkTableCache
from chalicelib.hits.records import build_record, minimise_ip, new_hit_id, now_ms
from chalicelib.keyring import KeyRing, KeyRingError, load_keyring
from chalicelib.urltemplate import fill_url
from chalicelib.version import VERSION

logger = logging.getLogger("sendtrail.hits")

# A transparent 1x1 GIF89a.
PIXEL_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
             b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
_ACCEPT_ANYTHING = "*/*"


def _store() -> DeliveryStore:
    config = get_hit_config()
    return DeliveryStore(config.deliveries_table, config.delivery_logs_table, aws.HIT_PATH)


link_tables = LinkTableCache(lambda delivery_id: _store().get_links(delivery_id))


def _keyring() -> KeyRing:
    config = get_hit_config()
    return load_keyring(config.signing_keys, config.signing_keys_parameter, config.signing_keys_max_age_seconds)


def _params(request: Request) -> str | None:
    """The signed `p` parameter ('' when absent); None when it is given twice."""
    values = request.query_params.getlist("p") if request.query_params else []
    if len(values) > 1:
        return None
    return values[0] if values else ""


def _verify(token: str, kind: int, params: str = "") -> tokens.TokenClaims | None:
    """The claims of a genuine token of `kind`, or None (logged with the reason)."""
    try:
        claims = tokens.verify(token, _keyring().keys, params)
    except tokens.InvalidToken as error:
        _rejected(error.reason)
        return None
    if claims.kind != kind:
        _rejected("wrong_kind")
        return None
    return claims


def _rejected(reason: str) -> None:
    """Count and log a hit that is answered but not recorded (never the token itself)."""
    logger.info("rejected hit", extra={"reason": reason})
    metrics.emit(metrics.HITS_REJECTED, reason=reason)


def _expired(table: dict[str, Any]) -> bool:
    expires_at = table.get("expires_at")
    return expires_at is not None and now_ms() > int(expires_at)


def _expired_response() -> Response:
    target = get_hit_config().expired_page_url
    if target:
        return Response(body="", status_code=302, headers={"Location": target, "Cache-Control": pages.NO_STORE})
    return pages.link_expired()


def _record(kind: str, claims: tokens.TokenClaims, token: str, params: str, request: Request) -> bool:
    """Record the hit: into the stream, or, if that put fails, as its own redirection-log object.

    The fallback object lands under the current hour's redirection-logs/
    prefix, where the tracking workflow reads it like any Firehose object
    (and drops the hit id if the put had reached Kinesis after all). The
    extra call is made only when Kinesis failed. False (logged) when neither
    write succeeded.
    """
    config = get_hit_config()
    identity = request.context.get("identity") or {}
    at_ms = now_ms()
    hit_id = new_hit_id(at_ms)
    record = build_record(
        kind, claims, token, params,
        user_agent=request.headers.get("user-agent", ""),
        ip=minimise_ip(identity.get("sourceIp") or "", config.ip_address_mode),
        request_id=request.context.get("requestId", ""),
        at_ms=at_ms, hit_id=hit_id,
    )
    try:
        put_hit(config.hit_stream, record, f"{claims.delivery_id}:{claims.log_id}")
        metrics.emit(metrics.HITS_ACCEPTED, kind=kind)
        return True
    except Exception:  # noqa: BLE001 - any failure to record must not fail the person's request
        logger.exception("could not put hit into the stream; writing it to the redirection logs",
                         extra={"kind": kind, "hit_id": hit_id})
        metrics.emit(metrics.HIT_STREAM_PUT_FAILURES)
    try:
        put_fallback(config.redirection_log_bucket, record, hit_id, at_ms)
        metrics.emit(metrics.FALLBACK_WRITES)
        metrics.emit(metrics.HITS_ACCEPTED, kind=kind)
        return True
    except Exception:  # noqa: BLE001
        logger.exception("could not record a hit: stream and redirection logs both failed",
                         extra={"kind": kind, "hit_id": hit_id})
        metrics.emit(metrics.HITS_UNRECORDED, kind=kind)
        return False


def redirect(request: Request, token: str) -> Response:
    """GET /r/{token}: 302 to the URL registered for the token's URL id, only."""
    params = _params(request)
    if params is None:
        _rejected("repeated_params")
        return pages.link_not_found()
    try:
        claims = _verify(token, tokens.KIND_CLICK, params)
        table = link_tables.get(claims.delivery_id) if claims else None
    except KeyRingError:
        logger.exception("signing keys are not configured")
        return pages.temporarily_unavailable()
    except Exception:  # noqa: BLE001 - e.g. DynamoDB unreachable on a cold container
        logger.exception("could not load the URL table")
        return pages.temporarily_unavailable()
    entry = (table or {}).get("urls", {}).get(str(claims.url_id)) if claims else None
    if not entry or not entry.get("url"):
        if claims:
            _rejected("unknown_link")
        return pages.link_not_found()
    if _expired(table):  # type: ignore[arg-type]
        _rejected("expired")
        return _expired_response()
    target = entry["url"]
    if entry.get("placeholders"):
        values = tokens.decode_params(params)
        if values is None:
            _rejected("bad_params")
            return pages.link_not_found()
        target = fill_url(target, values)
    _record(entry.get("type", "click"), claims, token, params, request)  # type: ignore[arg-type]
    return Response(body="", status_code=302, headers={"Location": target, "Cache-Control": pages.NO_STORE})


def pixel_response() -> Response:
    return Response(body=PIXEL_GIF, status_code=200, headers={
        "Content-Type": "image/gif", "Cache-Control": pages.NO_STORE, "Pragma": "no-cache", "Expires": "0",
    })


def _accept_anything(request: Request) -> None:
    """Let the GIF through Chalice whatever the client's Accept header says.

    API Gateway is told '*/*' is binary (infra/template.yaml), so it decodes
    the GIF for any Accept; Chalice, though, checks the request's Accept
    against its binary types after the view returns (on this same request
    object) and answers 400 to a binary body it does not match, which mail
    clients and image proxies (no Accept, text/html, image/*) often send.
    Done in the pixel's own view rather than in a middleware, so no other
    request pays for it.
    """
    headers = request.to_original_event().get("headers") or {}
    request.headers = CaseInsensitiveMapping({**headers, "accept": _ACCEPT_ANYTHING})


def open_pixel(request: Request, token: str) -> Response:
    """GET /o/{token}: always the GIF; the open is recorded when the token is genuine."""
    _accept_anything(request)
    try:
        claims = _verify(token, tokens.KIND_OPEN)
        table = link_tables.get(claims.delivery_id) if claims else None
        if claims and table is None:
            _rejected("unknown_link")
        elif claims and _expired(table):  # type: ignore[arg-type]
            _rejected("expired")
        elif claims:
            _record("open", claims, token, "", request)
    except Exception:  # noqa: BLE001 - a pixel never fails to render
        logger.exception("could not record an open")
        metrics.emit(metrics.HITS_UNRECORDED, kind="open")
    return pixel_response()


def _optout_claims(token: str) -> tuple[tokens.TokenClaims | None, Response | None]:
    try:
        claims = _verify(token, tokens.KIND_OPTOUT)
        if claims is None:
            return None, pages.link_not_found()
        if link_tables.get(claims.delivery_id) is None:
            _rejected("unknown_link")
            return None, pages.link_not_found()
    except Exception:  # noqa: BLE001
        logger.exception("could not verify an unsubscribe link")
        return None, pages.temporarily_unavailable()
    return claims, None


def unsubscribe_page(request: Request, token: str) -> Response:
    """GET /u/{token}: ask for confirmation (mail scanners GET links; only a POST unsubscribes)."""
    claims, failure = _optout_claims(token)
    if failure:
        return failure
    return pages.unsubscribe_confirmation(f"{stage_prefix(request)}/u/{token}")


def unsubscribe(request: Request, token: str) -> Response:
    """POST /u/{token}: RFC 8058 one-click unsubscribe, recorded once per recipient.

    Opt-outs are honoured even after the delivery's links expire. If the hit
    cannot be recorded anywhere (neither the stream nor the fallback object
    in the redirection logs), the opt-out is rolled back and the client told
    to retry, so the tracking and the address list never disagree.
    """
    claims, failure = _optout_claims(token)
    if failure or claims is None:
        return failure or pages.link_not_found()
    config = get_hit_config()
    store = _store()
    try:
        log = store.mark_optout(claims.delivery_id, claims.log_id, now_ms())
        if log is None:
            return pages.unsubscribed(already=True)
        if not _record("optout", claims, token, "", request):
            store.clear_optout(claims.delivery_id, claims.log_id)
            return pages.temporarily_unavailable()
        AddressStore(config.addresses_table, aws.HIT_PATH).record_unsubscribe(
            log.get("email", ""), claims.delivery_id, int(log["optout_at"]))
    except Exception:  # noqa: BLE001
        logger.exception("could not record an unsubscribe")
        return pages.temporarily_unavailable()
    return pages.unsubscribed(already=False)


def mirror_page(request: Request, token: str) -> Response:
    """GET /m/{token}: the recipient's message as HTML, as it was sent."""
    claims = _verify(token, tokens.KIND_MIRROR)
    try:
        table = link_tables.get(claims.delivery_id) if claims else None
        if claims is None:
            return pages.link_not_found()
        if table is None:
            _rejected("unknown_link")
            return pages.link_not_found()
        if _expired(table):
            _rejected("expired")
            return _expired_response()
        from chalicelib.deliveries.mirror import render_mirror  # not on the redirect/pixel path

        html = render_mirror(claims.delivery_id, claims.log_id, _base_url(request))
    except Exception:  # noqa: BLE001
        logger.exception("could not render a mirror page")
        return pages.temporarily_unavailable()
    if html is None:
        _rejected("unknown_link")
        return pages.link_not_found()
    _record("mirror", claims, token, "", request)
    return Response(body=html, status_code=200,
                    headers={"Content-Type": "text/html; charset=utf-8", "Cache-Control": pages.NO_STORE})


def status(request: Request) -> Response:
    """GET /r/test: Campaign's redirection-server health check, cheap enough to poll every second."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    host = request.headers.get("host", "")
    local_host = request.lambda_context.function_name if request.lambda_context else socket.gethostname()
    body = (f"<redir status='OK' date='{stamp}' version='{VERSION}' build='{VERSION}' "
            f"host='{_xml_attr(host)}' localHost='{_xml_attr(local_host)}'/>\n")
    return Response(body=body, status_code=200, headers={"Content-Type": "text/xml; charset=utf-8",
                                                           "Cache-Control": pages.NO_STORE})


def _xml_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace("'", "&apos;").replace("<", "&lt;")


def _base_url(request: Request) -> str:
    return public_base_url(request, get_hit_config().public_base_url)
