<%inherit file="base.mako"/>
<%def name="title()">Log in</%def>
<h1>Log in</h1>
% if flash:
<p class="flash" role="status">${flash}</p>
% endif
% if error:
<p class="error" role="alert">${error.detail}</p>
% endif
<form method="post" action="${links.dashboard}" class="login-form" id="login">
  <input type="hidden" name="${csrf_field}" value="${csrf_token}">
  % if return_to:
  <input type="hidden" name="next" value="${return_to}">
  % endif
  <label for="api-key">API key</label>
  <div class="row">
    <input id="api-key" name="api_key" type="password" required autocomplete="current-password"
           autocapitalize="none" spellcheck="false">
    <button type="submit" name="action" value="login">Log in</button>
  </div>
  <p class="hint">The secret of a gateway API key with <code>watch</code> permission\
% if return_to:
 on <code>${return_to}</code>\
% endif
. The gateway remembers which key logged in, never its secret, until you log out.</p>
</form>
