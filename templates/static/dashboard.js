/* Hutch dashboard: one exchange's messages, live over Server-Sent Events, newest first.
 *
 * Plain JavaScript, no framework, no build step.  Everything a message carries is put in the page
 * with textContent, never as HTML.  The page reconnects on its own with back-off and resumes after
 * the last event id it saw (kept in sessionStorage, so a reload resumes too); the server says
 * "gap" when it cannot prove nothing was missed, and the page shows where.  A stream opened without
 * an id first replays the exchange's history (when it keeps one), so the page is not empty.
 *
 * The event server does not see the session cookie's login: before each connection the page asks
 * the gateway for a short-lived ticket (same origin, with the cookie) and puts it in the URL.
 */
(function () {
  "use strict";

  var list = document.getElementById("messages");
  if (!list) {
    return;
  }
  var statusBox = document.getElementById("status");
  var statusLabel = statusBox.querySelector(".label");
  var countBox = document.getElementById("count");
  var emptyBox = document.getElementById("empty");
  var pauseButton = document.getElementById("pause");
  var clearButton = document.getElementById("clear");
  var streamUrl = list.getAttribute("data-events-url");
  var ticketUrl = list.getAttribute("data-ticket-url");
  var exchange = list.getAttribute("data-exchange");
  var maxItems = parseInt(list.getAttribute("data-max-items"), 10) || 500;
  var storageKey = "hutch.lastEventId." + exchange;
  var PROPERTIES = ["correlation_id", "type", "app_id", "content_encoding"];
  var MIN_BACKOFF = 1000;
  var MAX_BACKOFF = 30000;

  var source = null;
  var retryTimer = null;
  var backoff = MIN_BACKOFF;
  var lastId = stored();
  var received = 0;
  var paused = false;
  var held = [];
  var seen = new Set();
  var seenOrder = [];

  if (!window.EventSource) {
    setStatus("failed", "this browser cannot stream (no EventSource)");
    return;
  }

  // --- the connection -------------------------------------------------------------------------

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    if (source) {
      source.close();
      source = null;
    }
    fetch(ticketUrl, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        return response.json().then(function (data) {
          if (!response.ok) {
            throw { code: data.error || String(response.status), detail: data.detail || "" };
          }
          return data.ticket;
        });
      })
      .then(open, function (error) {
        retryLater(error.code || "", error.detail || "The gateway did not answer.");
      });
  }

  function open(ticket) {
    var url = streamUrl + "?ticket=" + encodeURIComponent(ticket) +
      (lastId ? "&last_event_id=" + encodeURIComponent(lastId) : "");
    var es = new EventSource(url);
    source = es;
    es.onmessage = function (event) {
      remember(event.lastEventId);
      show(JSON.parse(event.data));
    };
    es.addEventListener("ready", function (event) {
      remember(event.lastEventId);
      backoff = MIN_BACKOFF;
      setStatus("live", "live");
    });
    es.addEventListener("gap", function (event) {
      var gap = JSON.parse(event.data);
      if (gap.reason === "reset") {
        forgetPositions(); // the history was made anew: its positions start again from 0
      }
      showGap(gap);
    });
    es.addEventListener("closing", function (event) {
      // a planned end: resume from the last id at once after the lifetime (already spread out by the
      // server), within a second after a process shutdown (so its viewers do not all arrive at once);
      // after a reset (the history stream was deleted) no id is carried over: the next stream starts anew
      var reason = JSON.parse(event.data).reason;
      var shutdown = reason === "shutdown";
      if (reason === "reset") {
        forgetPositions();
      }
      es.close();
      clearTimeout(retryTimer);
      retryTimer = setTimeout(connect, shutdown ? Math.random() * 1000 : 0);
    });
    es.addEventListener("unavailable", function (event) {
      var data = JSON.parse(event.data);
      retryLater(data.error, data.detail);
    });
    es.onerror = function () {
      if (source === es) {
        retryLater("", "The connection to the gateway was lost.");
      }
    };
  }

  function retryLater(code, detail) {
    if (source) {
      source.close();
      source = null;
    }
    if (retryTimer) {
      return;
    }
    var delay = backoff * (0.75 + Math.random() * 0.5);
    backoff = Math.min(backoff * 2, MAX_BACKOFF);
    var broken = code && code !== "broker_unavailable";
    setStatus(broken ? "failed" : "reconnecting", (broken ? code + ", retrying" : "reconnecting") + "…", detail);
    retryTimer = setTimeout(connect, delay);
  }

  function setStatus(state, text, detail) {
    statusBox.className = "status " + state;
    statusBox.setAttribute("data-state", state);
    statusBox.title = detail || "";
    statusLabel.textContent = text;
  }

  function stored() {
    try {
      return window.sessionStorage.getItem(storageKey) || "";
    } catch (error) {
      return "";
    }
  }

  function remember(id) {
    if (!id) {
      return;
    }
    lastId = id;
    try {
      window.sessionStorage.setItem(storageKey, id);
    } catch (error) {
      // private mode: resuming still works while the page is open
    }
  }

  function forgetPositions() {
    lastId = "";
    seen.clear();
    seenOrder = [];
    try {
      window.sessionStorage.removeItem(storageKey);
    } catch (error) {
      // private mode: nothing was stored
    }
  }

  // --- messages -------------------------------------------------------------------------------

  function show(message) {
    if (message.id) {
      if (seen.has(message.id)) {
        return; // resent after a reconnect: already on the page
      }
      seen.add(message.id);
      seenOrder.push(message.id);
      if (seenOrder.length > 4 * maxItems) {
        seen.delete(seenOrder.shift());
      }
    }
    received += 1;
    list.dispatchEvent(new CustomEvent("hutch:message", { detail: message })); // for rateplot.js
    if (paused) {
      held.push(message);
    } else {
      insert(render(message));
    }
    updateCount();
  }

  function insert(node) {
    emptyBox.hidden = true;
    pauseButton.hidden = false;
    clearButton.hidden = false;
    list.insertBefore(node, list.firstChild);
    while (list.children.length > maxItems) {
      list.removeChild(list.lastChild);
    }
  }

  function render(message) {
    var item = element("li", "message fresh");
    item.setAttribute("data-id", message.id || "");
    item.setAttribute("data-kind", message.kind);
    var meta = element("div", "meta");
    var time = element("time", "", clock(message.received));
    time.dateTime = message.received;
    time.title = "received " + message.received + (message.timestamp ? ", sent " + message.timestamp : "");
    meta.appendChild(time);
    meta.appendChild(element("span", "type", message.content_type || "no content type"));
    meta.appendChild(element("span", "size", bytes(message.size)));
    if (message.message_id) {
      meta.appendChild(element("span", "mid", "id " + message.message_id));
    }
    PROPERTIES.forEach(function (name) {
      if (message[name]) {
        meta.appendChild(element("span", "mid", name + " " + message[name]));
      }
    });
    item.appendChild(meta);
    var names = Object.keys(message.headers || {}).sort();
    if (names.length) {
      var headers = element("dl", "headers");
      names.forEach(function (name) {
        headers.appendChild(element("dt", "", name));
        headers.appendChild(element("dd", "", text(message.headers[name])));
      });
      item.appendChild(headers);
    }
    appendBody(item, message);
    return item;
  }

  function appendBody(item, message) {
    var pre = element("pre", "body kind-" + message.kind);
    var note = "";
    if (message.kind === "binary") {
      var shown = message.preview ? (message.preview.length + 1) / 3 : 0; // "00 1f …": 3 characters a byte
      pre.textContent = message.preview + (message.size > shown ? " …" : "");
      note = "binary, " + bytes(message.size) + (message.size ? "; the first bytes in hex" : "");
    } else if (message.kind === "json") {
      pre.textContent = message.body;
      if (!message.truncated) {
        try {
          pre.textContent = JSON.stringify(JSON.parse(message.body), null, 2);
        } catch (error) {
          note = "not valid JSON; shown as text";
        }
      }
    } else {
      pre.textContent = message.body;
    }
    if (message.truncated) {
      note = (note ? note + "; " : "") + "cut short: the gateway keeps the first part of large messages";
    }
    if (message.size === 0) {
      note = "empty body";
    }
    if (pre.textContent) {
      item.appendChild(pre);
    }
    if (note) {
      item.appendChild(element("p", "note", note));
    }
  }

  var GAP_WORDS = {
    retention: "Messages are missing here: the exchange's history no longer holds what came while this page was away.",
    reconnected: "Messages may be missing here: the gateway lost its broker connection meanwhile.",
    unknown_id: "Messages may be missing here: the gateway could not place this page's last message.",
    reset: "The exchange's history was made anew (or this page's last position is beyond its end): " +
      "what follows starts again from its beginning.",
  };

  function showGap(gap) {
    var words = GAP_WORDS[gap.reason] || "Messages may be missing here.";
    var item = element("li", "gap", words);
    item.setAttribute("role", "note");
    if (paused) {
      held.push(item);
    } else {
      insert(item);
    }
  }

  function updateCount() {
    countBox.textContent = received + (received === 1 ? " message" : " messages") +
      (held.length ? " · " + held.length + " held while paused" : "");
  }

  // --- controls -------------------------------------------------------------------------------

  pauseButton.addEventListener("click", function () {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    if (!paused) {
      held.forEach(function (entry) {
        insert(entry instanceof window.Node ? entry : render(entry));
      });
      held = [];
    }
    updateCount();
  });

  clearButton.addEventListener("click", function () {
    while (list.firstChild) {
      list.removeChild(list.firstChild);
    }
    emptyBox.hidden = false;
    emptyBox.textContent = "Cleared. Waiting for messages.";
  });

  var form = document.getElementById("publish");
  if (form && window.fetch && window.URLSearchParams && window.FormData) {
    var formStatus = document.getElementById("publish-status");
    var button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      formStatus.className = "form-status";
      formStatus.textContent = "sending…";
      button.disabled = true;
      post(form.getAttribute("action"), new URLSearchParams(new FormData(form)))
        .then(function (result) {
          if (result.ok) {
            formStatus.textContent = "sent " + result.data.message_id.slice(0, 8) +
              (result.data.routed ? "" : " (no queue was bound: nobody received it)");
          } else {
            formStatus.className = "form-status bad";
            formStatus.textContent = result.data.detail || result.data.error;
          }
        })
        .catch(function () {
          formStatus.className = "form-status bad";
          formStatus.textContent = "could not reach the gateway";
        })
        .then(function () {
          button.disabled = false;
        });
    });
    form.querySelector("textarea").addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && form.requestSubmit) {
        form.requestSubmit();
      }
    });
  }

  var toggle = document.getElementById("follow-toggle");
  if (toggle && window.fetch && window.URLSearchParams && window.FormData) {
    toggle.addEventListener("submit", function (event) {
      event.preventDefault(); // a reload would empty the list: ask in the background instead
      var button = toggle.querySelector("button[name=action]");
      var data = new URLSearchParams(new FormData(toggle));
      data.set("action", button.value);
      button.disabled = true;
      post(toggle.getAttribute("action"), data) // not .action: a field named "action" shadows it
        .then(function (result) {
          if (result.ok) {
            button.value = result.data.following ? "unfollow" : "follow";
            button.textContent = result.data.following ? "Unfollow" : "Follow";
          }
        })
        .catch(function () {})
        .then(function () {
          button.disabled = false;
        });
    });
  }

  window.addEventListener("online", function () {
    if (retryTimer) {
      connect();
    }
  });
  window.addEventListener("pagehide", function () {
    if (source) {
      source.close();
      source = null;
    }
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      connect(); // back from the back/forward cache
    }
  });

  // --- small helpers --------------------------------------------------------------------------

  function post(url, data) {
    return fetch(url, {
      method: "POST",
      body: data,
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    }).then(function (response) {
      return response.json().then(
        function (json) { return { ok: response.ok, data: json }; },
        function () { return { ok: false, data: { detail: "HTTP " + response.status } }; }
      );
    });
  }

  function element(tag, className, content) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (content !== undefined) {
      node.textContent = content;
    }
    return node;
  }

  function text(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function pad(number, width) {
    var digits = String(number);
    while (digits.length < (width || 2)) {
      digits = "0" + digits;
    }
    return digits;
  }

  function clock(iso) {
    var moment = new Date(iso);
    if (isNaN(moment.getTime())) {
      return String(iso);
    }
    var time = pad(moment.getHours()) + ":" + pad(moment.getMinutes()) + ":" + pad(moment.getSeconds()) +
      "." + pad(moment.getMilliseconds(), 3);
    var today = new Date();
    if (moment.toDateString() !== today.toDateString()) {
      time = moment.getFullYear() + "-" + pad(moment.getMonth() + 1) + "-" + pad(moment.getDate()) + " " + time;
    }
    return time;
  }

  function bytes(size) {
    if (size < 1024) {
      return size + " B";
    }
    if (size < 1024 * 1024) {
      return (size / 1024).toFixed(1) + " KiB";
    }
    return (size / 1024 / 1024).toFixed(1) + " MiB";
  }

  connect();
})();
