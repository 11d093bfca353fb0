<%inherit file="base.mako"/>
<%def name="title()">${error.status} ${error.code}</%def>
<h1>${error.status} <span class="muted">${error.code}</span></h1>
<p class="error" role="alert">${error.detail}</p>
% if error.code == "bad_csrf_token":
<p>The form was older than your session, or came from another site. Reload the page and send it again.</p>
% endif
<p><a href="${links.dashboard}">Back to the dashboard</a></p>
