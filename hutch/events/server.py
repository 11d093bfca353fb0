"""The event server: ``GET /events/{exchange}`` as Server-Sent Events, on asyncio (aiohttp).

An idle stream costs a socket and a few objects here, not a server thread,
so one process holds thousands.  ``hutch serve`` starts these processes
beside mod_wsgi (all on one port, ``SO_REUSEPORT``) and its front
(HAProxy, ``hutch.serve.front``) hands them the ``/events/`` connections; in
production ``apache/haproxy.cfg`` does the same (or Apache's proxy,
``apache/hutch.conf``).  They read the gateway's own ini: the same broker,
API keys and session secret.

Authorization is the gateway's: an API key with ``watch`` on the exchange
in ``Authorization``, or (for the dashboard's EventSource, which cannot
send headers) a ticket the gateway signed for the logged-in browser
(``hutch.auth.tickets``), or that browser's session cookie itself
(``hutch.events.session``).  Errors are the gateway's JSON errors, mapped here in
one place.
"""

import asyncio
import json
import logging
import os
import random
import time

from aiohttp import web

from hutch import metrics
from hutch.auth.policy import CHALLENGE, authorize
from hutch.auth.tickets import signing_key, verify
from hutch.errors import (
    BrokerUnavailable,
    Forbidden,
    HutchError,
    MethodNotAllowed,
    NotFound,
    TooManyStreams,
    Unauthorized,
)
from hutch.events import sse
from hutch.events.client import Client
from hutch.events.feeds import Feed
from hutch.events.history import read_range
from hutch.events.link import BrokerLink
from hutch.events.resume import (
    MAX_ID_LENGTH,
    beyond_end,
    gap_event,
    live_id,
    parse_offset,
    plan_history,
    plan_live,
    split_replay,
)
from hutch.events.session import SessionReader
from hutch.names import checked_name

log = logging.getLogger(__name__)

LIFETIME_JITTER = 0.15  # streams end between 85% and 100% of events_max_lifetime, so reconnects spread out
START_WAIT = 30.0  # seconds a stream waits for its exchange's feed to start
CATCH_UP_WAIT = 2.0  # seconds a Last-Event-ID beyond the feed's tail waits for the feed to reach it
TICK = 1.0  # seconds between the checks for heartbeats and lifetimes
WRITE_BATCH = 200  # events per write while replaying
STREAM_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx and friends: do not buffer the stream
}
TIER = web.AppKey("tier", object)


class EventTier:
    """This process's feeds, its broker link, and the flag that ends every stream at shutdown."""

    def __init__(self, settings):
        self.settings = settings
        self.link = BrokerLink(
            list(settings.amqp_url),  # the cluster's nodes, parsed by the settings
            heartbeat=settings.heartbeat,
            connect_timeout=settings.connect_timeout,
            reconnect_max_delay=settings.reconnect_max_delay,
        )
        self.ticket_key = signing_key(settings.session["session.secret"])
        self.sessions = SessionReader(settings.session)
        self.feeds = {}
        self.streams = 0
        self.deliveries = 0
        self.stopping = False
        self.ticker = None
        self.closing = set()  # feeds being closed

    async def feed(self, exchange):
        """The running feed of ``exchange``, started (declared, primed) on first use."""
        feed = self.feeds.get(exchange)
        if feed is None:
            feed = self.feeds[exchange] = Feed(self, exchange)
            self.link.listeners.add(feed)
            feed.starting = asyncio.create_task(self._start(feed))
        try:
            await asyncio.wait_for(asyncio.shield(feed.starting), START_WAIT)
        except TimeoutError:
            raise BrokerUnavailable("The broker did not serve the exchange in time.") from None
        return feed

    async def _start(self, feed):
        try:
            await feed.declare()
        except HutchError:
            self._forget(feed)
            raise
        except Exception as error:  # the connection went away under the declaration
            self._forget(feed)
            raise BrokerUnavailable(f"The broker cannot serve this exchange now: {error}") from None
        except BaseException:
            self._forget(feed)
            raise
        feed.start()
        await feed.ready.wait()

    def _forget(self, feed):
        if self.feeds.get(feed.exchange) is feed:
            del self.feeds[feed.exchange]
        self.link.listeners.discard(feed)

    def retire(self, feed, force=False):
        """The feed's last stream left ``events_linger`` ago (or its stream is gone): stop consuming."""
        if feed.closed or (feed.clients and not force):
            return
        self._forget(feed)
        # held until done: a task nobody references may be collected while pending ("Task was
        # destroyed but it is pending!" in the log)
        closing = asyncio.get_running_loop().create_task(feed.close())
        self.closing.add(closing)
        closing.add_done_callback(self.closing.discard)

    async def tick(self):
        """Every second: heartbeats for streams silent ``events_heartbeat`` s, ``closing`` at deadlines."""
        loop = asyncio.get_running_loop()
        heartbeat = self.settings.events_heartbeat
        beat = sse.comment("heartbeat")
        while True:
            await asyncio.sleep(min(TICK, heartbeat / 2))
            now = loop.time()
            for feed in list(self.feeds.values()):
                quiet_since = now - feed.last_publish
                for client in list(feed.clients):
                    if now >= client.deadline:
                        client.end("max_lifetime")
                    elif quiet_since >= heartbeat and now - client.last_write >= heartbeat:
                        client.last_write = now
                        client.say(beat)

    async def stop(self):
        """End every stream with ``closing`` (they reconnect elsewhere), then the feeds and the link."""
        self.stopping = True
        for feed in list(self.feeds.values()):
            for client in feed.clients:
                client.end("shutdown")

    async def close(self):
        if self.ticker is not None:
            self.ticker.cancel()
        for feed in list(self.feeds.values()):
            await feed.close()
        await self.link.close()


# --- authorization and errors -------------------------------------------------


async def authorize_stream(request, tier, exchange):
    """401/403 exactly as the gateway answers them: an API key, the dashboard's ticket, or the
    dashboard's session (its cookie), in that order."""
    policy = tier.settings.auth
    if not policy.enabled:
        return None
    header = request.headers.get("Authorization")
    if header:
        return authorize({"HTTP_AUTHORIZATION": header}, policy, "watch", exchange)
    ticket = request.query.get("ticket")
    cookie = request.headers.get("Cookie", "")
    if ticket:
        name = verify(tier.ticket_key, ticket, exchange)
        key = next((key for key in policy.keys if key.name == name), None) if name else None
        if key is None:
            raise Unauthorized(
                "The dashboard's ticket is invalid or expired; reload the page.", headers=[CHALLENGE]
            )
    elif tier.sessions.carries_session(cookie):
        key = await tier.sessions.key(cookie, policy)
        if key is None:
            raise Unauthorized("Log in to the dashboard (again), or send an API key.", headers=[CHALLENGE])
    else:
        raise Unauthorized("Log in to the dashboard, or send an API key.", headers=[CHALLENGE])
    if not key.allows("watch", exchange):
        raise Forbidden(f"The API key {key.name!r} may not watch {exchange!r}.")
    return key.name


def json_response(status, data, headers=()):
    """JSON exactly as the gateway writes it (``hutch.web.http.json_response``)."""
    body = json.dumps(data, separators=(",", ":")).encode() + b"\n"
    return web.Response(body=body, status=status, headers=[("Content-Type", "application/json"), *headers])


def error_response(error):
    """The gateway's JSON error for any ``HutchError``: the one mapping of the event server."""
    return json_response(error.status, {"error": error.code, "detail": error.detail}, error.headers)


STARTED = "hutch.started"  # the request's arrival (monotonic), for the request metrics


@web.middleware
async def json_errors(request, handler):
    request[STARTED] = time.monotonic()
    try:
        return await handler(request)
    except HutchError as error:
        return error_response(error)
    except web.HTTPMethodNotAllowed as error:
        return error_response(MethodNotAllowed(error.allowed_methods | {"HEAD"}))
    except web.HTTPNotFound:
        return error_response(NotFound())


# --- the stream -------------------------------------------------------------------


def last_event_id(request):
    """``Last-Event-ID``, or ``last_event_id`` in the query (a page that opens a new EventSource)."""
    text = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or ""
    return text.strip()[:MAX_ID_LENGTH]


async def stream(request):
    tier = request.app[TIER]
    settings = tier.settings
    exchange = checked_name(request.match_info["exchange"], "exchange")
    await authorize_stream(request, tier, exchange)
    if tier.stopping:
        raise TooManyStreams("This event server is shutting down; retry shortly.", settings.retry_after)
    if 0 < settings.events_max_streams <= tier.streams:
        detail = f"This event server already serves {settings.events_max_streams} streams."
        raise TooManyStreams(detail, settings.retry_after)
    if not tier.link.up.is_set():
        raise BrokerUnavailable("The message broker is unreachable.", settings.retry_after)
    tier.streams += 1  # counted from here, so a crowd arriving at once meets the limit
    try:
        feed = await tier.feed(exchange)
        if request.method == "HEAD":
            return web.Response(headers=STREAM_HEADERS)
        return await serve_stream(request, tier, feed, last_event_id(request))
    finally:
        tier.streams -= 1


async def serve_stream(request, tier, feed, resume_from):
    settings = tier.settings
    if feed.history and beyond_end(resume_from, feed.tail):
        await feed.reach(parse_offset(resume_from), CATCH_UP_WAIT)  # another process may have sent it
    # Everything from planning to attaching runs without an await: no event slips between them.
    if feed.history:
        plan = plan_history(resume_from, settings.history.count, feed.tail)
    else:
        plan = plan_live(resume_from, feed.feed_id, feed.tail or 0)
    read, from_buffer = (None, None)
    if plan.start is not None:
        last = feed.tail if feed.tail is not None else -1
        read, from_buffer = split_replay(plan.start, feed.buffer_first, last)
    buffered = feed.buffered_from(from_buffer) if from_buffer is not None else []
    seen = feed.tail if feed.tail is not None else -1
    lifetime = settings.events_max_lifetime * (1 - random.uniform(0, LIFETIME_JITTER))  # noqa: S311
    loop = asyncio.get_running_loop()
    client = Client(max(plan.after, seen), settings.events_max_pending, loop.time() + lifetime)
    client.last_write = loop.time()
    feed.attach(client)
    if tier.stopping:
        client.end("shutdown")
    metrics.event_stream_opened()
    response = web.StreamResponse(headers=STREAM_HEADERS)
    try:
        await response.prepare(request)
        await response.write(sse.retry())
        if plan.unknown is not None:
            await response.write(sse.json_frame(gap_event(plan.reason, plan.unknown, None), "gap"))
        replayed = 0
        if read is not None:
            events, dropped = await read_range(feed, *read)
            if dropped:
                resumed_at = str(events[0].position) if events else str(from_buffer)
                await response.write(sse.json_frame(gap_event("retention", resume_from, resumed_at), "gap"))
            replayed += await write_events(response, events)
        replayed += await write_events(response, buffered)
        ready = {
            "exchange": feed.exchange,
            "history": feed.history,
            "replayed": replayed,
            "process": os.getpid(),
        }
        position = max(plan.after, seen)  # everything up to here was sent or skipped
        if feed.history:
            ready_id = str(position) if position >= 0 else None
        else:
            ready_id = live_id(feed.feed_id, max(position, 0))
        await response.write(sse.json_frame(ready, "ready", ready_id))
        while client.pending:  # what the feed published during the replay
            await response.write(client.take())
        client.last_write = loop.time()
        if request.transport is None or request.transport.is_closing():
            return response  # the browser left during the replay
        client.go_live(request.transport, response.headers.get("Transfer-Encoding") == "chunked")
        await client.wait()
        if client.cut:
            log.info("cut off a stream that fell %d bytes behind", client.max_pending)
        else:
            await response.write(closing(client.ending))
    except (ConnectionResetError, ConnectionError):
        pass  # the client went away
    finally:
        feed.detach(client)
        metrics.event_stream_closed()
    return response


async def write_events(response, events):
    for index in range(0, len(events), WRITE_BATCH):
        await response.write(b"".join(event.frame for event in events[index : index + WRITE_BATCH]))
    return len(events)


def closing(reason):
    """The stream ends on purpose; reconnect (with the last id) at once."""
    return sse.json_frame({"reason": reason, "retry_ms": sse.RETRY_MS}, "closing")


async def health(request):
    tier = request.app[TIER]
    if tier.link.up.is_set():
        return json_response(200, {"broker": "ok"})
    error = BrokerUnavailable("The message broker is unreachable.", tier.settings.retry_after)
    return json_response(503, {"broker": "unavailable"}, error.headers)


# --- the application ------------------------------------------------------------


def make_app(settings):
    tier = EventTier(settings)
    app = web.Application(middlewares=[json_errors])
    app[TIER] = tier
    app.router.add_get("/events/{exchange}", stream)
    app.router.add_get("/health", health)

    async def start_link(_app):
        tier.link.start()
        tier.ticker = asyncio.create_task(tier.tick(), name="ticker")

    async def stop_streams(_app):
        await tier.stop()

    async def close_tier(_app):
        await tier.close()

    async def plain_server_header(request, response):
        response.headers["Server"] = "hutch"  # not aiohttp's name and version
        # counted as the gateway counts its requests; a stream when it starts (its status is sent)
        started = request.get(STARTED)
        if started is not None:
            app = "health" if request.path.endswith("/health") else "events"
            metrics.request_answered(app, response.status, time.monotonic() - started)

    app.on_response_prepare.append(plain_server_header)
    app.on_startup.append(start_link)
    app.on_shutdown.append(stop_streams)
    app.on_cleanup.append(close_tier)
    return app
