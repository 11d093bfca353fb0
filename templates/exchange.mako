<%inherit file="base.mako"/>
<%def name="title()">${exchange}</%def>
<section class="top">
  <h1><span class="muted">exchange</span> <span class="exchange-name">${exchange}</span></h1>
  <p id="status" class="status connecting" role="status" aria-live="polite">
    <span class="dot" aria-hidden="true"></span><span class="label">connecting…</span>
  </p>
  <form method="post" action="${links.dashboard}" class="inline follow" id="follow-toggle">
    <input type="hidden" name="${csrf_field}" value="${csrf_token}">
    <input type="hidden" name="exchange" value="${exchange}">
    <input type="hidden" name="back" value="page">
    % if following:
    <button type="submit" name="action" value="unfollow" class="quiet">Unfollow</button>
    % else:
    <button type="submit" name="action" value="follow" class="quiet">Follow</button>
    % endif
  </form>
</section>
% if flash:
<p class="flash" role="status">${flash}</p>
% endif
<details class="publish"${' open' if error else ''}>
  <summary>Broadcast a message</summary>
  <form method="post" action="${links.page(exchange)}" id="publish">
    <input type="hidden" name="${csrf_field}" value="${csrf_token}">
    % if error:
    <p class="error" role="alert">${error.detail}</p>
    % endif
    <label for="content-type">Content type</label>
    <input id="content-type" name="content_type" list="content-types" value="${content_type}" maxlength="255"
           autocomplete="off" autocapitalize="none" spellcheck="false">
    <datalist id="content-types">
      % for choice in content_types:
      <option value="${choice}"></option>
      % endfor
    </datalist>
    <label for="message-body">Message</label>
    <textarea id="message-body" name="body" rows="5" spellcheck="false" placeholder='{"team": "home", "score": 1}'>${body}</textarea>
    <div class="row">
      <button type="submit">Broadcast</button>
      <span id="publish-status" class="form-status" aria-live="polite"></span>
    </div>
  </form>
</details>
<figure id="rate-plot" class="rate" data-window="60" hidden>
  <div class="rate-head"><span class="muted">rate</span> <strong class="rate-now">0 msg/s</strong>
    <span class="muted">over the last 5 s</span></div>
  <figcaption class="rate-summary">no messages in the last 60 s</figcaption>
</figure>
<div class="toolbar">
  <span id="count" class="count">no messages yet</span>
  <span class="spacer"></span>
  <button type="button" id="pause" class="quiet" hidden>Pause</button>
  <button type="button" id="clear" class="quiet" hidden>Clear</button>
</div>
<noscript><p class="error">This page streams messages with JavaScript; without it, nothing arrives here.
The stream itself is <a href="${links.events(exchange)}">${links.events(exchange)}</a>.</p></noscript>
<p id="empty" class="empty">Waiting for messages. Broadcast one with the form above, or
<code>POST ${links.root}/broadcast/${exchange}</code>.</p>
<ol id="messages" class="messages" data-events-url="${links.events(exchange)}"
    data-ticket-url="${links.ticket(exchange)}"
    data-exchange="${exchange}" data-max-items="500"></ol>
<script src="${links.static('dashboard.js')}" defer></script>
<script src="${links.static('rateplot.js')}" defer></script>
