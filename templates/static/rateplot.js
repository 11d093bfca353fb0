/* Hutch dashboard: the exchange's message rate over the last minute, drawn as an SVG bar chart.
 *
 * dashboard.js tells this file of every message it shows with a "hutch:message" event on the
 * message list; nothing here opens a stream.  A live message counts when the gateway received it
 * (its "received" field).  A replayed one (history on open, or what a reconnect resends: whatever
 * comes before the stream's "ready", while the status is not yet "live") counts when it was
 * published (its AMQP "timestamp", which the gateway sets), so history lands where it happened
 * instead of as one spike now.  Never later than it arrived here.  When this browser's clock is
 * off by more than a few seconds (read from the Date header of one HEAD request for this script),
 * the gateway's times are moved onto it.  The figures are also
 * kept as data- attributes and text (rate now, peak, messages in the window, the series), for
 * screen readers and tests.  Plain JavaScript, no library, no inline style: the strict CSP holds.
 */
(function () {
  "use strict";

  var figure = document.getElementById("rate-plot");
  var list = document.getElementById("messages");
  if (!figure || !list || !document.createElementNS) {
    return;
  }
  var SVG = "http://www.w3.org/2000/svg";
  var WINDOW = parseInt(figure.getAttribute("data-window"), 10) || 60; // seconds shown
  var RECENT = 5; // seconds the "now" rate averages over
  var HEIGHT = 120;
  var AXIS = 28; // room for the y labels on the left
  var FOOT = 18; // room for the x labels below
  var REDRAW_MS = 1000;

  var SKEW_TOLERANCE = 3000; // ms: closer clocks are taken as equal (Date has 1 s resolution)

  var statusBox = document.getElementById("status");
  var entries = []; // {sent: when it happened, the gateway's clock (ms, or NaN), arrived: this browser's}
  var skew = 0; // this browser's clock minus the gateway's, when they differ by more than the tolerance
  var nowBox = figure.querySelector(".rate-now");
  var summaryBox = figure.querySelector(".rate-summary");
  var svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "rate-chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("height", String(HEIGHT));
  figure.insertBefore(svg, figure.querySelector("figcaption"));
  figure.hidden = false;

  list.addEventListener("hutch:message", function (event) {
    record(event.detail || {});
  });
  window.addEventListener("resize", schedule); // the chart is drawn for its width in pixels

  function record(message) {
    var sent = Date.parse(message.received);
    var published = Date.parse(message.timestamp) + 500; // whole seconds: the middle of that second
    var replayed = statusBox && statusBox.getAttribute("data-state") !== "live";
    if (replayed && !isNaN(published) && !(published > sent)) {
      sent = published;
    }
    entries.push({ sent: sent, arrived: Date.now() });
    schedule();
  }

  function moment(entry) {
    return isNaN(entry.sent) ? entry.arrived : Math.min(entry.arrived, entry.sent + skew);
  }

  function learnSkew(scriptUrl) {
    if (!window.fetch || !scriptUrl) {
      return;
    }
    var asked = Date.now();
    fetch(scriptUrl, { method: "HEAD", cache: "no-store", credentials: "same-origin" })
      .then(function (response) {
        var server = Date.parse(response.headers.get("Date"));
        var here = (asked + Date.now()) / 2;
        if (!isNaN(server) && Math.abs(here - server) > SKEW_TOLERANCE) {
          skew = here - server;
          draw();
        }
      })
      .catch(function () {}); // no answer: the clocks are taken as equal
  }

  var pending = null;
  function schedule() {
    // many messages in one burst: draw once for all of them, on the next frame
    if (pending === null) {
      pending = setTimeout(function () {
        pending = null;
        draw();
      }, 50);
    }
  }

  function series(now) {
    var counts = [];
    for (var i = 0; i < WINDOW; i += 1) {
      counts.push(0);
    }
    var start = now - WINDOW * 1000;
    entries = entries.filter(function (entry) {
      return moment(entry) > start; // older than the window: forgotten
    });
    entries.forEach(function (entry) {
      var slot = Math.floor((moment(entry) - start) / 1000);
      counts[Math.max(0, Math.min(WINDOW - 1, slot))] += 1;
    });
    return counts;
  }

  function draw() {
    var now = Date.now();
    var counts = series(now);
    var total = entries.length;
    var recent = counts.slice(WINDOW - RECENT).reduce(function (a, b) { return a + b; }, 0);
    var rate = recent / RECENT;
    var peak = Math.max.apply(null, counts);
    var top = niceTop(peak);

    figure.setAttribute("data-rate", rate.toFixed(1));
    figure.setAttribute("data-peak", String(peak));
    figure.setAttribute("data-total", String(total));
    figure.setAttribute("data-series", counts.join(","));
    nowBox.textContent = format(rate) + " msg/s";
    summaryBox.textContent = total + (total === 1 ? " message" : " messages") + " in the last " + WINDOW +
      " s · peak " + peak + " msg/s";
    svg.setAttribute("aria-label", "Message rate: " + format(rate) + " messages per second now; " +
      total + " in the last " + WINDOW + " seconds, at most " + peak + " in one second.");

    var width = Math.max(200, Math.round(svg.getBoundingClientRect().width) || 600);
    svg.setAttribute("viewBox", "0 0 " + width + " " + HEIGHT);
    while (svg.firstChild) {
      svg.removeChild(svg.firstChild);
    }
    var plotWidth = width - AXIS;
    var plotHeight = HEIGHT - FOOT;
    var slot = plotWidth / WINDOW;
    [0, top / 2, top].forEach(function (value) {
      var y = plotHeight - (value / top) * (plotHeight - 6);
      svg.appendChild(shape("line", "rate-grid", { x1: AXIS, x2: width, y1: y, y2: y }));
      svg.appendChild(label("rate-label", AXIS - 4, y + 4, format(value), "end"));
    });
    counts.forEach(function (count, index) {
      if (!count) {
        return;
      }
      var barHeight = (count / top) * (plotHeight - 6);
      var bar = shape("rect", "rate-bar", {
        x: AXIS + index * slot + 0.5,
        y: plotHeight - barHeight,
        width: Math.max(1, slot - 1),
        height: barHeight,
      });
      var tip = document.createElementNS(SVG, "title");
      tip.textContent = count + " msg in the second ending " + (WINDOW - index - 1) + " s ago";
      bar.appendChild(tip);
      svg.appendChild(bar);
    });
    [[0, "-" + WINDOW + " s", "start"], [WINDOW / 2, "-" + WINDOW / 2 + " s", "middle"], [WINDOW, "now", "end"]]
      .forEach(function (tick) {
        svg.appendChild(label("rate-label", AXIS + tick[0] * slot, HEIGHT - 4, tick[1], tick[2]));
      });
  }

  function niceTop(peak) {
    // the y axis ends on 1, 2 or 5 times a power of ten, at least 1 msg/s
    var top = 1;
    while (top < peak) {
      var digits = String(top).charAt(0);
      top = digits === "1" ? top * 2 : digits === "2" ? top * 2.5 : top * 2;
    }
    return top;
  }

  function format(value) {
    return value >= 10 || value === Math.round(value) ? String(Math.round(value)) : value.toFixed(1);
  }

  function shape(tag, className, attributes) {
    var node = document.createElementNS(SVG, tag);
    node.setAttribute("class", className);
    Object.keys(attributes).forEach(function (name) {
      node.setAttribute(name, String(attributes[name]));
    });
    return node;
  }

  function label(className, x, y, text, anchor) {
    var node = shape("text", className, { x: x, y: y, "text-anchor": anchor });
    node.textContent = text;
    return node;
  }

  learnSkew(document.currentScript && document.currentScript.src);
  draw();
  setInterval(draw, REDRAW_MS);
})();
