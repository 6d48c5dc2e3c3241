"""The public tracking endpoints, behind app.py's routes.

Every valid hit is answered at once (302, GIF or page) and recorded as one
record in the Kinesis hit stream (or, when Kinesis fails, in the fallback
delivery stream, or, when that fails too, as its own object in the
redirection logs). Invalid, unknown or tampered tokens are
answered with a friendly page (or, for the pixel, the same GIF) and recorded
nowhere: a link that does not verify redirects nowhere.

Metrics (chalicelib/metrics.py, buffered and flushed once per request): a
hit that reaches the stream prints none, since a log line on every hit would
cost about a tenth of what the rest of the hit costs (README, "Cost"); the
stream's own IncomingRecords and the workflow's HitsTracked count those.
The rest is counted as it happens: HitsRejected{reason} (the token's InvalidToken reason,
wrong_kind, repeated_params, unknown_link, expired, bad_params),
HitStreamPutFailures, FallbackStreamWrites, FallbackStreamPutFailures,
FallbackWrites and HitsUnrecorded{kind}; answers with
a 5xx status are counted by the middleware (HttpServerErrors).
"""

from __future__ import annotations

import functools
import logging
import re
import socket
import time
from html import escape
from typing import Any, Callable, Sequence

from chalice import Response
from chalice.app import CaseInsensitiveMapping, Request

from chalicelib import metrics, tokens
from chalicelib.base_url import public_base_url, stage_prefix
from chalicelib.data import aws
from chalicelib.data.addresses import AddressStore
from chalicelib.data.deliveries import DeliveryStore
from chalicelib.data.hit_stream import put_hit
from chalicelib.data.redirection_logs import put_fallback, put_fallback_stream
from chalicelib.hits import pages
from chalicelib.hits.config import get_hit_config
from chalicelib.hits.link_cache import LinkTableCache
from chalicelib.hits.records import build_record, declared_purpose, minimise_ip, new_hit_id, now_ms
from chalicelib.keyring import KeyRing, KeyRingError, load_keyring
from chalicelib.urltemplate import append_query, fill_url
from chalicelib.version import VERSION

logger = logging.getLogger("sendtrail.hits")

# A transparent 1x1 GIF89a.
PIXEL_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
             b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
_ACCEPT_ANYTHING = "*/*"
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


# The methods each public route answers (app.py declares them all: API Gateway answers a method an
# API does not declare with 403 "Missing Authentication Token", never reaching us). HEAD answers
# as GET does, without a body and without recording anything; OPTIONS says what is allowed; the
# others get 405.
ROUTE_METHODS: dict[str, tuple[str, ...]] = {
    "/r/test": ("GET", "HEAD"),
    "/r/{token}": ("GET", "HEAD"),
    "/o/{token}": ("GET", "HEAD"),
    "/u/{token}": ("GET", "HEAD", "POST"),
    "/m/{token}": ("GET", "HEAD"),
}
OTHER_METHODS = ("POST", "PUT", "PATCH", "DELETE")  # Chalice's methods, less GET, HEAD and OPTIONS


def _allow(request: Request) -> str:
    return ", ".join((*ROUTE_METHODS.get(request.path, ("GET", "HEAD")), "OPTIONS"))


def options(request: Request) -> Response:
    """OPTIONS on a public route: 204 and the methods it answers (no CORS: no page calls these routes)."""
    return Response(body="", status_code=204, headers={"Allow": _allow(request), "Cache-Control": pages.NO_STORE})


def method_not_allowed(request: Request) -> Response:
    """Any other method on a public route: 405 with Allow, and a page saying so to a person."""
    return pages.page(405, "This address only opens links",
                      ["Open the link from your email in a browser."], headers={"Allow": _allow(request)})


def head_like_get(view: Callable[..., Response]) -> Callable[..., Response]:
    """The view's answer to GET, and to HEAD the same status and headers without a body.

    A HEAD records nothing (`_record` skips it): link checkers and mail
    scanners send HEAD, and they are not people clicking.
    """
    @functools.wraps(view)
    def answer(request: Request, *args: str) -> Response:
        response = view(request, *args)
        if request.method == "HEAD":
            response.body = b"" if isinstance(response.body, bytes) else ""  # Chalice: bytes for binary types
        return response

    return answer


def _store() -> DeliveryStore:
    config = get_hit_config()
    return DeliveryStore(config.deliveries_table, config.delivery_logs_table, aws.HIT_PATH)


link_tables = LinkTableCache(lambda delivery_id: _store().get_links(delivery_id))


def _keyring() -> KeyRing:
    config = get_hit_config()
    return load_keyring(config.signing_keys, config.signing_keys_parameter, config.signing_keys_max_age_seconds)


# A link scanner may repeat the query string; more distinct `p` values than this are not a click.
MAX_PARAM_CANDIDATES = 4


def _query(request: Request) -> dict[str, list[str]]:
    """Every query parameter with all its values, as API Gateway decoded them (no KeyError for absent ones)."""
    return request.to_original_event().get("multiValueQueryStringParameters") or {}


def _param_candidates(query: dict[str, list[str]]) -> list[str] | None:
    """The distinct `p` values a click came with (['']: none or empty), or None when too many differ.

    Repeated or empty parameters are how mail clients and scanners mangle
    links: the token's signature decides which value (if any) is genuine.
    """
    values = list(dict.fromkeys(value for value in query.get("p", ()) if value)) or [""]
    return values if len(values) <= MAX_PARAM_CANDIDATES else None


def _verify(token: str, kind: int, candidates: Sequence[str] = ("",)) -> tuple[tokens.TokenClaims | None, str]:
    """The claims of a genuine token of `kind` and the `p` value it signs, or (None, '') (logged with the reason).

    KeyRingError (no or malformed signing keys) propagates: the caller
    answers 503, as for any other dependency it cannot reach.
    """
    keys = _keyring().keys
    reasons = []
    for params in candidates:
        try:
            claims = tokens.verify(token, keys, params)
        except tokens.InvalidToken as error:
            reasons.append(error.reason)
            continue
        if claims.kind != kind:
            _rejected("wrong_kind")
            return None, ""
        return claims, params
    _rejected(reasons[0])
    return None, ""


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
    """Record the hit: into the stream, else the fallback delivery stream, else as its own log object.

    Each put has botocore's retries (aws.HIT_PATH); the next is made only
    when the one before failed. The fallback stream (Firehose, DirectPut)
    batches such hits into the redirection logs, so an outage of the hit
    stream does not become one object per hit; the per-hit object under
    the current hour's redirection-logs/ prefix is the last resort. The
    record (its time and hit id) is the same on every path, and the tracking
    workflow drops a hit id it has seen, should a failed put have landed
    after all. A HEAD records nothing; a prefetch or preview the request
    declares (records.declared_purpose) is recorded with its purpose, and
    the workflow counts it as a machine's (reason `prefetch`). False (logged) when no write succeeded.
    """
    if request.method == "HEAD":
        return True
    config = get_hit_config()
    identity = request.context.get("identity") or {}
    at_ms = now_ms()
    hit_id = new_hit_id(at_ms)
    record = build_record(
        kind, claims, token, params,
        user_agent=request.headers.get("user-agent", ""),
        ip=minimise_ip(identity.get("sourceIp") or "", config.ip_address_mode),
        request_id=request.context.get("requestId", ""),
        at_ms=at_ms, hit_id=hit_id, purpose=declared_purpose(request.headers),
    )
    context = {"kind": kind, "hit_id": hit_id}
    try:
        put_hit(config.hit_stream, record, f"{claims.delivery_id}:{claims.log_id}")
        return True
    except Exception:  # noqa: BLE001 - any failure to record must not fail the person's request
        logger.exception("could not put hit into the stream; putting it into the fallback stream", extra=context)
        metrics.emit(metrics.HIT_STREAM_PUT_FAILURES)
    if config.redirection_log_fallback_stream:
        try:
            put_fallback_stream(config.redirection_log_fallback_stream, record)
            metrics.emit(metrics.FALLBACK_STREAM_WRITES)
            return True
        except Exception:  # noqa: BLE001
            logger.exception("could not put hit into the fallback stream; writing it as its own log object",
                             extra=context)
            metrics.emit(metrics.FALLBACK_STREAM_PUT_FAILURES)
    try:
        put_fallback(config.redirection_log_bucket, record, hit_id, at_ms)
        metrics.emit(metrics.FALLBACK_WRITES)
        return True
    except Exception:  # noqa: BLE001
        logger.exception("could not record a hit: stream, fallback stream and redirection logs all failed",
                         extra=context)
        metrics.emit(metrics.HITS_UNRECORDED, kind=kind)
        return False


@head_like_get
def redirect(request: Request, token: str) -> Response:
    """GET /r/{token}: 302 to the URL registered for the token's URL id, only.

    Parameters other than `p` (added by mail clients, scanners, people) do
    not change where the click goes, nor whether it counts; they are
    appended to the target only when the delivery forwards them.
    """
    query = _query(request)
    candidates = _param_candidates(query)
    if candidates is None:
        _rejected("repeated_params")
        return pages.link_not_found()
    try:
        claims, params = _verify(token, tokens.KIND_CLICK, candidates)
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
    if table.get("forward_query_params"):  # type: ignore[union-attr]
        target = append_query(target, [(name, value) for name, values in query.items() if name != "p"
                                       for value in values])
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


@head_like_get
def open_pixel(request: Request, token: str) -> Response:
    """GET /o/{token}: always the GIF; the open is recorded when the token is genuine."""
    _accept_anything(request)
    try:
        claims, _ = _verify(token, tokens.KIND_OPEN)
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
        claims, _ = _verify(token, tokens.KIND_OPTOUT)
        if claims is None:
            return None, pages.link_not_found()
        if link_tables.get(claims.delivery_id) is None:
            _rejected("unknown_link")
            return None, pages.link_not_found()
    except Exception:  # noqa: BLE001
        logger.exception("could not verify an unsubscribe link")
        return None, pages.temporarily_unavailable()
    return claims, None


@head_like_get
def unsubscribe_page(request: Request, token: str) -> Response:
    """GET /u/{token}: ask for confirmation (mail scanners GET links; only a POST unsubscribes)."""
    claims, failure = _optout_claims(token)
    if failure:
        return failure
    return pages.unsubscribe_confirmation(f"{stage_prefix(request)}/u/{token}")


def unsubscribe(request: Request, token: str) -> Response:
    """POST /u/{token}: RFC 8058 one-click unsubscribe, recorded once per recipient.

    Opt-outs are honoured even after the delivery's links expire. The writes
    go in an order in which a retry completes whatever an earlier attempt
    left undone: first the address (what the send worker checks; idempotent),
    then the log's opt-out (pending), then the hit, then the log confirmed.
    Any failure before the hit is recorded answers 503 and leaves the log
    pending, so the person's retry records the hit; only a confirmed opt-out
    answers "already unsubscribed".
    """
    claims, failure = _optout_claims(token)
    if failure or claims is None:
        return failure or pages.link_not_found()
    config = get_hit_config()
    store = _store()
    try:
        log = store.get_log(claims.delivery_id, claims.log_id, consistent=True)
        if log is None:
            _rejected("unknown_link")
            return pages.link_not_found()
        at_ms = int(log.get("optout_at") or now_ms())
        AddressStore(config.addresses_table, aws.HIT_PATH).record_unsubscribe(
            str(log.get("email", "")), claims.delivery_id, at_ms)
        if store.mark_optout(claims.delivery_id, claims.log_id, at_ms) is None:
            return pages.unsubscribed(already=True)
        if not _record("optout", claims, token, "", request):
            return pages.temporarily_unavailable()
    except Exception:  # noqa: BLE001 - the person is asked to retry; the retry completes what is missing
        logger.exception("could not record an unsubscribe")
        return pages.temporarily_unavailable()
    try:
        store.confirm_optout(claims.delivery_id, claims.log_id)
    except Exception:  # noqa: BLE001 - recorded everywhere that counts; a retry would only repeat the hit
        logger.exception("could not confirm a recorded unsubscribe")
    return pages.unsubscribed(already=False)


@head_like_get
def mirror_page(request: Request, token: str) -> Response:
    """GET /m/{token}: the recipient's message as HTML, as it was sent."""
    try:
        claims, _ = _verify(token, tokens.KIND_MIRROR)
        if claims is None:
            return pages.link_not_found()
        table = link_tables.get(claims.delivery_id)
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
    return Response(body=html, status_code=200, headers=dict(pages.MIRROR_HEADERS))


@head_like_get
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
    """`value` as the text of an XML attribute: markup escaped, characters XML cannot hold dropped."""
    return _XML_INVALID.sub("", escape(value, quote=True))


def _base_url(request: Request) -> str:
    return public_base_url(request, get_hit_config().public_base_url)
