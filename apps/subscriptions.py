"""The dashboard's page of push subscriptions and HTTP responders.

GET  /subscriptions/   every subscription and responder the viewer's key may manage (``register``
                       on a push subscription's exchange, ``respond`` on a responder's), with its
                       state, last failure and dead-letter count
POST /subscriptions/   action = redeliver | drop (exchange, consumer): the dead letters of one
                       subscription -> 303 back to the page

A dashboard page like the others: the logged-in session's key (or an
``Authorization`` header), CSRF-checked forms, errors as pages for browsers.
"""

from hutch.auth.csrf import FIELD, authorize_browser, check_csrf, viewer
from hutch.delivery import deadletters
from hutch.delivery.api import store_for, work_queue
from hutch.errors import (
    BadCsrfToken,
    BadRequest,
    BrokerUnavailable,
    Forbidden,
    NoSubscription,
    PayloadTooLarge,
    SubscriptionStoreUnavailable,
    Unauthorized,
)
from hutch.names import checked_name
from hutch.web.http import Route, Routes, operation
from hutch.web.pages import Links, error_page, pop_flash, read_form, redirect, render, session_of, set_flash

FIELDS = frozenset({FIELD, "action", "exchange", "consumer"})


def may(request, gateway, idiom, resource):
    """Does the viewer's key allow ``idiom`` on ``resource``?  401 when there is no key at all."""
    try:
        authorize_browser(request.environ, gateway.settings.auth, idiom, resource)
    except Forbidden:
        return False
    return True


def rows(request, gateway):
    """The subscriptions and responders this viewer may manage, each with its state."""
    settings = gateway.settings
    store = store_for(settings)
    shown = []
    for subscription in store.all():
        if subscription.kind == "push":
            allowed = may(request, gateway, "register", subscription.exchange)
        else:
            allowed = may(request, gateway, "respond", f"{subscription.exchange}/{subscription.name}")
        if not allowed:
            continue
        row = {"subscription": subscription, **store.state(subscription.key), "dead_letters": None}
        if subscription.kind == "push":
            try:
                row["dead_letters"] = deadletters.count(settings, subscription.queue)
            except BrokerUnavailable:
                row["dead_letters"] = "?"
        shown.append(row)
    return shown


@operation("pushDashboard", raises=(Unauthorized, SubscriptionStoreUnavailable))
def index(request, gateway):
    if gateway.settings.auth.enabled:
        may(request, gateway, "register", "")  # a key, whatever it allows: 401 (the login form) without one
    configured = bool(gateway.settings.push_store)
    values = {"flash": pop_flash(session_of(request)), "configured": configured, "rows": []}
    if configured:
        values["rows"] = rows(request, gateway)
    return render(request, "subscriptions.mako", **values)


@operation(
    "pushDashboardAct",
    raises=(
        BadRequest,
        BadCsrfToken,
        PayloadTooLarge,
        Unauthorized,
        Forbidden,
        NoSubscription,
        BrokerUnavailable,
        SubscriptionStoreUnavailable,
    ),
)
def act(request, gateway):
    settings = gateway.settings
    if settings.auth.enabled and viewer(request.environ, settings.auth) is None:
        raise Unauthorized("Log in with an API key.")
    form = read_form(request, FIELDS, settings.max_body_bytes)
    session = session_of(request)
    check_csrf(session, form.get(FIELD))
    exchange = checked_name(form.get("exchange", ""), "exchange")
    consumer = checked_name(form.get("consumer", ""), "consumer")
    authorize_browser(request.environ, settings.auth, "register", exchange)
    if store_for(settings).get("push", exchange, consumer) is None:
        raise NoSubscription()
    queue = work_queue(exchange, consumer)
    action = form.get("action")
    if action == "redeliver":
        moved = deadletters.redeliver(settings, queue)
        set_flash(session, f"{moved} dead letter(s) of {exchange}/{consumer} queued for delivery again.")
    elif action == "drop":
        dropped = deadletters.drop(settings, queue)
        set_flash(session, f"{dropped} dead letter(s) of {exchange}/{consumer} dropped.")
    else:
        raise BadRequest("action must be redeliver or drop.")
    session.save()
    return redirect(Links(request).subscriptions)


application = Routes(Route("/", page=error_page, browser=True, GET=index, POST=act))
