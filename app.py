"""sendtrail: routes and event handlers, each delegating to chalicelib.

Public tracking endpoints (the hit path) are imported eagerly and kept
lean; the authenticated API's modules load on first use (chalicelib.lazy),
so a cold start that serves a click never imports them.
"""

from chalice import Chalice, Rate

from chalicelib import auth, observability
from chalicelib.auth import ADMIN, READ, requires
from chalicelib.hits import endpoints as hits
from chalicelib.lazy import lazy

deliveries_api = lazy("chalicelib.api.deliveries")
tracking_api = lazy("chalicelib.api.tracking")
reports_api = lazy("chalicelib.api.reports")
workflow = lazy("chalicelib.tracking.workflow")
quarantine_api = lazy("chalicelib.api.quarantine")
send_worker_module = lazy("chalicelib.mta.worker")
ses_events_module = lazy("chalicelib.mta.events")
status_api = lazy("chalicelib.api.status")
privacy_api = lazy("chalicelib.api.privacy")
docs_api = lazy("chalicelib.api.docs")
delivery_gauges = lazy("chalicelib.mta.gauges")
pages = lazy("chalicelib.pages.views")

app = Chalice(app_name="sendtrail")
observability.install(app)  # JSON logs with a correlation id; metrics flushed at the end of each invocation
# Each route behind api_auth declares its scope on the line under @app.route: @requires(READ) or
# @requires(ADMIN); one that declares none needs admin (chalicelib/auth.py).
app.register_middleware(auth.enforce_scopes(app), "http")

# Whatever Content-Type a public request carries: Chalice otherwise answers 415 (echoing the type)
# before the view runs, so a GET with a stray Content-Type, or a one-click unsubscribe POSTed as
# some other type, would be lost. The token decides; the body is never read.
ANY_CONTENT = ["*/*"]


@app.authorizer()
def api_auth(auth_request):
    return auth.authorize(auth_request.token)


# --- public tracking endpoints (the hit path) ------------------------------

@app.route("/r/test", methods=["GET", "HEAD"], content_types=ANY_CONTENT)
def redirection_status():
    return hits.status(app.current_request)


@app.route("/r/{token}", methods=["GET", "HEAD"], content_types=ANY_CONTENT)
def tracked_click(token):
    return hits.redirect(app.current_request, token)


@app.route("/o/{token}", methods=["GET", "HEAD"], content_types=ANY_CONTENT)
def open_pixel(token):
    return hits.open_pixel(app.current_request, token)


@app.route("/u/{token}", methods=["GET", "HEAD"], content_types=ANY_CONTENT)
def unsubscribe_page(token):
    return hits.unsubscribe_page(app.current_request, token)


@app.route("/u/{token}", methods=["POST"], content_types=ANY_CONTENT)
def unsubscribe(token):
    return hits.unsubscribe(app.current_request, token)


@app.route("/m/{token}", methods=["GET", "HEAD"], content_types=ANY_CONTENT)
def mirror_page(token):
    return hits.mirror_page(app.current_request, token)


def public_route_options(**_path: str):
    return hits.options(app.current_request)


def public_route_other_method(**_path: str):
    return hits.method_not_allowed(app.current_request)


for public_path in hits.ROUTE_METHODS:  # OPTIONS and 405 on every public route (see hits.ROUTE_METHODS)
    app.route(public_path, methods=[method for method in hits.OTHER_METHODS
                                    if method not in hits.ROUTE_METHODS[public_path]],
              content_types=ANY_CONTENT)(public_route_other_method)
    app.route(public_path, methods=["OPTIONS"], content_types=ANY_CONTENT)(public_route_options)


# --- dashboard API (authenticated) ------------------------------------------

@app.route("/api/deliveries", methods=["POST"], authorizer=api_auth)
@requires(ADMIN)
def create_delivery():
    return deliveries_api.create(app.current_request)


@app.route("/api/deliveries", methods=["GET"], authorizer=api_auth)
@requires(READ)
def list_deliveries():
    return deliveries_api.list_all(app.current_request)


@app.route("/api/deliveries/{delivery_id}", methods=["GET"], authorizer=api_auth)
@requires(READ)
def get_delivery(delivery_id):
    return deliveries_api.get(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/send", methods=["POST"], authorizer=api_auth)
@requires(ADMIN)
def send_delivery(delivery_id):
    return deliveries_api.send(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/indicators", methods=["GET"], authorizer=api_auth)
@requires(READ)
def delivery_indicators(delivery_id):
    return tracking_api.indicators(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/hot-clicks", methods=["GET"], authorizer=api_auth)
@requires(READ)
def delivery_hot_clicks(delivery_id):
    return reports_api.hot_clicks(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/urls", methods=["GET"], authorizer=api_auth)
@requires(READ)
def delivery_urls(delivery_id):
    return reports_api.urls(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/timeline", methods=["GET"], authorizer=api_auth)
@requires(READ)
def delivery_timeline(delivery_id):
    return reports_api.timeline(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/time-to-react", methods=["GET"], authorizer=api_auth)
@requires(READ)
def delivery_time_to_react(delivery_id):
    return reports_api.time_to_react(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/breakdown", methods=["GET"], authorizer=api_auth)
@requires(READ)
def delivery_breakdown(delivery_id):
    return reports_api.breakdown(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/domains", methods=["GET"], authorizer=api_auth)
@requires(READ)
def delivery_domains(delivery_id):
    return reports_api.domains(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/tracking", methods=["GET"], authorizer=api_auth)
@requires(READ)
def delivery_tracking(delivery_id):
    return reports_api.delivery_tracking(app.current_request, delivery_id)


@app.route("/api/throughput", methods=["GET"], authorizer=api_auth)
@requires(READ)
def throughput_report():
    return reports_api.throughput(app.current_request)


@app.route("/api/deliveries/{delivery_id}/user-agents", methods=["GET"], authorizer=api_auth)
@requires(READ)
def delivery_user_agents(delivery_id):
    return tracking_api.user_agents(app.current_request, delivery_id)


@app.route("/api/recipients/{recipient_id}/tracking", methods=["GET"], authorizer=api_auth)
@requires(READ)
def recipient_tracking(recipient_id):
    return tracking_api.recipient_tracking(app.current_request, recipient_id)


@app.route("/api/recipients/{recipient_id}/export", methods=["GET"], authorizer=api_auth)
@requires(ADMIN)
def export_recipient(recipient_id):
    return privacy_api.export_recipient(app.current_request, recipient_id)


@app.route("/api/recipients/{recipient_id}", methods=["DELETE"], authorizer=api_auth)
@requires(ADMIN)
def erase_recipient(recipient_id):
    return privacy_api.erase_recipient(app.current_request, recipient_id)


@app.route("/api/deliveries/{delivery_id}", methods=["DELETE"], authorizer=api_auth)
@requires(ADMIN)
def purge_delivery(delivery_id):
    return privacy_api.purge_delivery(app.current_request, delivery_id)


@app.route("/api/workflow/run", methods=["POST"], authorizer=api_auth)
@requires(ADMIN)
def run_tracking_workflow():
    return tracking_api.run_workflow(app.current_request)


# --- send jobs and the MTA's monitoring (authenticated) ----------------------

@app.route("/api/deliveries/{delivery_id}/pause", methods=["POST"], authorizer=api_auth)
@requires(ADMIN)
def pause_delivery(delivery_id):
    return deliveries_api.pause(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/resume", methods=["POST"], authorizer=api_auth)
@requires(ADMIN)
def resume_delivery(delivery_id):
    return deliveries_api.resume(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/stop", methods=["POST"], authorizer=api_auth)
@requires(ADMIN)
def stop_delivery(delivery_id):
    return deliveries_api.stop(app.current_request, delivery_id)


@app.route("/api/deliveries/{delivery_id}/logs", methods=["GET"], authorizer=api_auth)
@requires(READ)
def delivery_logs(delivery_id):
    return deliveries_api.logs(app.current_request, delivery_id)


@app.route("/api/quarantine", methods=["GET"], authorizer=api_auth)
@requires(READ)
def list_quarantine():
    return quarantine_api.list_quarantine(app.current_request)


# --- operations: Campaign's pdump and /r/test in one (authenticated) --------

@app.route("/api/status", methods=["GET"], authorizer=api_auth)
@requires(READ)
def operations_status():
    return status_api.status_report(app.current_request)


@app.route("/api/signing-keys", methods=["GET"], authorizer=api_auth)
@requires(READ)
def signing_key_schedule():
    return status_api.signing_keys(app.current_request)


# --- the API's description: the OpenAPI document and its reference page ------
# The page and its scripts are public (nothing secret in them, like a login
# page); the page asks for the token and loads the document with it.

@app.route("/api/openapi.json", methods=["GET"], authorizer=api_auth)
@requires(READ)
def openapi_document():
    return docs_api.openapi_document(app.current_request, app)


@app.route("/docs", methods=["GET"])
def api_reference():
    return docs_api.page(app.current_request)


@app.route("/docs/{name}", methods=["GET"])
def api_reference_asset(name):
    return docs_api.asset(app.current_request, name)


# --- dashboard pages (a session cookie from the login page; Jinja2 and pygal load on first use) ----

@app.route("/dashboard/login", methods=["GET"])
def dashboard_login_form():
    return pages.login_form(app.current_request)


@app.route("/dashboard/login", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
def dashboard_login():
    return pages.login(app.current_request)


@app.route("/dashboard/logout", methods=["POST"], content_types=["application/x-www-form-urlencoded"])
def dashboard_logout():
    return pages.logout(app.current_request)


@app.route("/dashboard", methods=["GET"])
def dashboard_deliveries():
    return pages.deliveries(app.current_request)


@app.route("/dashboard/deliveries/{delivery_id}", methods=["GET"])
def dashboard_delivery(delivery_id):
    return pages.delivery(app.current_request, delivery_id)


@app.route("/dashboard/deliveries/{delivery_id}/hot-clicks", methods=["GET"])
def dashboard_hot_clicks(delivery_id):
    return pages.delivery_hot_clicks(app.current_request, delivery_id)


@app.route("/dashboard/deliveries/{delivery_id}/tracking", methods=["GET"])
def dashboard_delivery_tracking(delivery_id):
    return pages.delivery_tracking(app.current_request, delivery_id)


@app.route("/dashboard/recipients", methods=["GET"])
def dashboard_find_recipient():
    return pages.find_recipient(app.current_request)


@app.route("/dashboard/recipients/{recipient_id}", methods=["GET"])
def dashboard_recipient(recipient_id):
    return pages.recipient(app.current_request, recipient_id)


@app.route("/dashboard/status", methods=["GET"])
def dashboard_status():
    return pages.status(app.current_request)


# --- the MTA's queue-driven functions (each its own Lambda function) ---------
# Chalice wants a queue name here; the queue each one really reads is its
# event's Queue in infra/template.yaml (the overrides at its end), which the
# deployment and the local runtime both use. The names below are those
# queues' logical ids, for the reader.

@app.on_sqs_message(queue="SendWorkQueue", batch_size=1)
def send_worker(event):
    return send_worker_module.handle(event.to_dict(), event.context)


@app.on_sqs_message(queue="SesEventsQueue", batch_size=10)
def ses_events(event):
    return ses_events_module.handle(event.to_dict(), event.context)


# --- the delivery monitor (its own Lambda function) -------------------------
# Every minute: the oldest delivery in start pending, how many are sending and
# how many stalled, as metrics for the alarms (a stuck job means no worker runs
# to say so).

@app.schedule(Rate(1, unit=Rate.MINUTES))
def delivery_monitor(event):
    return delivery_gauges.scheduled_run(event.to_dict(), event.context)


# --- the tracking workflow (its own Lambda function) ------------------------

@app.schedule(Rate(1, unit=Rate.MINUTES))
def tracking_workflow(event):
    return workflow.scheduled_run(event.to_dict(), event.context)
