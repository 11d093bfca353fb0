<%inherit file="base.mako"/>
<%def name="title()">Push subscriptions</%def>
<h1>Push subscriptions and HTTP responders</h1>
% if flash:
<p class="flash" role="status">${flash}</p>
% endif
% if not configured:
<p class="empty">Push delivery is not configured on this gateway (set <code>push_store</code>).</p>
% elif not rows:
<p class="empty">Your key manages no push subscription or HTTP responder.</p>
% else:
<table class="subscriptions">
  <thead>
    <tr><th>Exchange</th><th>Consumer / routing key</th><th>URL</th><th>Delivered</th><th>Failed attempts</th>
        <th>Last success</th><th>Last failure</th><th>Dead letters</th><th></th></tr>
  </thead>
  <tbody>
  % for row in rows:
    <% subscription = row["subscription"] %>
    <% failure = row["last_failure"] %>
    <tr id="${subscription.key}">
      <td>${subscription.exchange}</td>
      <td>${subscription.name}${" (responder)" if subscription.kind == "rpc" else ""}</td>
      <td><code>${subscription.url}</code></td>
      <td>${row["delivered"]}</td>
      <td>${row["failed_attempts"]}</td>
      <td>${row["last_success_at"] or "never"}</td>
      <td>
      % if failure:
        ${failure["at"]}: ${failure.get("status", failure.get("error"))}
      % else:
        none
      % endif
      </td>
      <td class="dead-letters">${"" if row["dead_letters"] is None else row["dead_letters"]}</td>
      <td>
      % if subscription.kind == "push":
        <form method="post" action="${links.root}/subscriptions/" class="inline">
          <input type="hidden" name="${csrf_field}" value="${csrf_token}">
          <input type="hidden" name="exchange" value="${subscription.exchange}">
          <input type="hidden" name="consumer" value="${subscription.name}">
          <button type="submit" name="action" value="redeliver">Redeliver</button>
          <button type="submit" name="action" value="drop" class="quiet">Drop</button>
        </form>
      % endif
      </td>
    </tr>
  % endfor
  </tbody>
</table>
% endif
