<%inherit file="base.mako"/>
<%def name="title()">Dashboard</%def>
<h1>Exchanges you follow</h1>
% if flash:
<p class="flash" role="status">${flash}</p>
% endif
% if followed:
<ul class="followed">
  % for name in followed:
  <li>
    <a class="exchange-link" href="${links.page(name)}">${name}</a>
    <form method="post" action="${links.dashboard}" class="inline" id="unfollow-${name}">
      <input type="hidden" name="${csrf_field}" value="${csrf_token}">
      <input type="hidden" name="exchange" value="${name}">
      <button type="submit" name="action" value="unfollow" class="quiet" title="Stop following ${name}">Unfollow</button>
    </form>
  </li>
  % endfor
</ul>
% else:
<p class="empty">You follow no exchange yet. Follow one below, or open <code>${links.dashboard}<em>exchange</em></code>
and press <em>Follow</em> there.</p>
% endif
<h2>Follow an exchange</h2>
<form method="post" action="${links.dashboard}" class="follow-form" id="follow">
  <input type="hidden" name="${csrf_field}" value="${csrf_token}">
  <label for="follow-exchange">Exchange</label>
  <div class="row">
    <input id="follow-exchange" name="exchange" required maxlength="127" pattern="[A-Za-z0-9_.:\-]{1,127}"
           placeholder="score_updates" autocomplete="off" autocapitalize="none" spellcheck="false">
    <button type="submit" name="action" value="follow">Follow</button>
  </div>
  <p class="hint">Names are 1–127 of A–Z a–z 0–9 _ . : - ; a session follows at most ${max_followed}.</p>
</form>
