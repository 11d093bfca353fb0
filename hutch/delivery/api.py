"""The HTTP routes of push delivery, mounted by ``apps/notify.py`` (and responders by ``apps/rpc.py``).

PUT/GET/DELETE /notify/{exchange}/queues/{consumer}/push
PUT/GET/DELETE /rpc/{exchange}/{routing_key}/responder
POST           /notify/{exchange}/queues/{consumer}/push/rotate-secret
GET/DELETE     /notify/{exchange}/queues/{consumer}/dead-letters
POST           /notify/{exchange}/queues/{consumer}/dead-letters/redeliver

The gateway only writes the subscription (``store``) and handles dead
letters; the delivery processes see a change within ``store.POLL`` s.
"""

import json
import threading

from webob import Response

from hutch.delivery import deadletters
from hutch.delivery.signing import sealer_for
from hutch.delivery.store import SubscriptionStore, parse_body
from hutch.delivery.targets import TargetPolicy
from hutch.errors import (
    BrokerUnavailable,
    InvalidSubscription,
    NoSubscription,
    PreconditionFailed,
    SubscriptionStoreUnavailable,
    TargetRefused,
)
from hutch.web.http import BODY_ERRORS, Route, json_response, operation, read_body

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
STORE_ERRORS = (SubscriptionStoreUnavailable,)
_stores = {}
_stores_lock = threading.Lock()


def store_for(settings):
    """This process's client of ``push_store`` (one per URL), or 503 when push delivery is not set up."""
    if not settings.push_store:
        raise SubscriptionStoreUnavailable("Push delivery is not configured here (push_store is unset).")
    with _stores_lock:
        store = _stores.get(settings.push_store)
        if store is None:
            store = _stores[settings.push_store] = SubscriptionStore(
                settings.push_store, sealer_for(settings)
            )
        return store


def json_body(request, settings):
    body = read_body(request.environ, settings.max_body_bytes)
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise InvalidSubscription("The body must be JSON.") from None


def no_content():
    return Response(status=204, headerlist=[])


def work_queue(exchange, consumer):
    return f"{exchange}.{consumer}"


@operation(
    "putPush",
    raises=(
        *BODY_ERRORS,
        InvalidSubscription,
        TargetRefused,
        PreconditionFailed,
        BrokerUnavailable,
        *STORE_ERRORS,
    ),
)
def put_push(request, gateway, exchange, consumer):
    settings = gateway.settings
    fields = parse_body(json_body(request, settings), "push")
    store = store_for(settings)
    TargetPolicy(settings.push_allow).check_resolved(fields["url"])
    queue = work_queue(exchange, consumer)
    gateway.broker.ensure_consumer_queue(exchange, queue, settings.notify_queue_type)
    deadletters.declare_dead_queue(settings, queue)
    subscription, secret = store.put("push", exchange, consumer, fields)
    body = {"exchange": exchange, "consumer": consumer, "queue": queue, **subscription.public()}
    if secret is not None:
        body["secret"] = secret
        return json_response(201, body)
    return json_response(200, body)


@operation("getPush", raises=(NoSubscription, BrokerUnavailable, *STORE_ERRORS))
def get_push(request, gateway, exchange, consumer):
    store = store_for(gateway.settings)
    subscription = store.get("push", exchange, consumer)
    if subscription is None:
        raise NoSubscription()
    queue = work_queue(exchange, consumer)
    body = {"exchange": exchange, "consumer": consumer, "queue": queue, **subscription.public()}
    body.update(store.state(subscription.key))
    body["dead_letters"] = deadletters.count(gateway.settings, queue)
    body["other_consumers"] = other_consumers(gateway.settings, store, subscription)
    return json_response(200, body)


def other_consumers(settings, store, subscription):
    """The queue's consumers that are not delivery processes: each takes messages the URL never sees."""
    total = deadletters.consumers(settings, subscription.queue)
    if total is None:
        return None
    return max(0, total - store.delivery_consumers(subscription.key))


@operation("deletePush", raises=(NoSubscription, *STORE_ERRORS))
def delete_push(request, gateway, exchange, consumer):
    if not store_for(gateway.settings).delete("push", exchange, consumer):
        raise NoSubscription()
    return no_content()


@operation("rotatePushSecret", raises=(NoSubscription, *STORE_ERRORS))
def rotate_push(request, gateway, exchange, consumer):
    secret = store_for(gateway.settings).rotate("push", exchange, consumer)
    if secret is None:
        raise NoSubscription()
    return json_response(200, {"secret": secret})


def requested_limit(request):
    text = request.GET.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidSubscription(f"limit must be an integer from 1 to {MAX_LIMIT}.")
    return int(text)


@operation("listDeadLetters", raises=(InvalidSubscription, NoSubscription, BrokerUnavailable))
def list_dead(request, gateway, exchange, consumer):
    limit = requested_limit(request)
    entries = deadletters.listing(gateway.settings, work_queue(exchange, consumer), limit)
    return json_response(200, {"dead_letters": entries})


@operation("redeliverDeadLetters", raises=(NoSubscription, BrokerUnavailable))
def redeliver_dead(request, gateway, exchange, consumer):
    moved = deadletters.redeliver(gateway.settings, work_queue(exchange, consumer))
    return json_response(200, {"redelivered": moved})


@operation("dropDeadLetters", raises=(NoSubscription, BrokerUnavailable))
def drop_dead(request, gateway, exchange, consumer):
    dropped = deadletters.drop(gateway.settings, work_queue(exchange, consumer))
    return json_response(200, {"dropped": dropped})


PUSH_ROUTES = (
    Route(
        "{exchange}/queues/{consumer}/push",
        permission="register",
        PUT=put_push,
        GET=get_push,
        DELETE=delete_push,
    ),
    Route("{exchange}/queues/{consumer}/push/rotate-secret", permission="register", POST=rotate_push),
    Route(
        "{exchange}/queues/{consumer}/dead-letters", permission="register", GET=list_dead, DELETE=drop_dead
    ),
    Route("{exchange}/queues/{consumer}/dead-letters/redeliver", permission="register", POST=redeliver_dead),
)


# --- HTTP responders (apps/rpc.py) -------------------------------------------------------------


@operation("putResponder", raises=(*BODY_ERRORS, InvalidSubscription, TargetRefused, *STORE_ERRORS))
def put_responder(request, gateway, exchange, routing_key):
    settings = gateway.settings
    fields = parse_body(json_body(request, settings), "rpc")
    store = store_for(settings)
    TargetPolicy(settings.push_allow).check_resolved(fields["url"])
    subscription, secret = store.put("rpc", exchange, routing_key, fields)
    body = {
        "exchange": exchange,
        "routing_key": routing_key,
        "queue": subscription.queue,
        **subscription.public(),
    }
    if secret is not None:
        body["secret"] = secret
        return json_response(201, body)
    return json_response(200, body)


@operation("getResponder", raises=(NoSubscription, *STORE_ERRORS))
def get_responder(request, gateway, exchange, routing_key):
    store = store_for(gateway.settings)
    subscription = store.get("rpc", exchange, routing_key)
    if subscription is None:
        raise NoSubscription()
    body = {
        "exchange": exchange,
        "routing_key": routing_key,
        "queue": subscription.queue,
        **subscription.public(),
    }
    body.update(store.state(subscription.key))
    return json_response(200, body)


@operation("deleteResponder", raises=(NoSubscription, *STORE_ERRORS))
def delete_responder(request, gateway, exchange, routing_key):
    if not store_for(gateway.settings).delete("rpc", exchange, routing_key):
        raise NoSubscription()
    return no_content()


RESPONDER_ROUTES = (
    Route(
        "{exchange}/{routing_key}/responder",
        permission="respond",
        PUT=put_responder,
        GET=get_responder,
        DELETE=delete_responder,
    ),
)
