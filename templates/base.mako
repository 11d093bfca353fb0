## The frame of every dashboard page: no CDN, no framework, one stylesheet of our own.
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${self.title()} · Hutch</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${links.static('dashboard.css')}">
</head>
<body>
<header class="masthead">
  <a class="brand" href="${links.dashboard}">Hutch</a>
  <span class="tagline">live broadcast exchanges</span>
  <a class="nav" href="${links.subscriptions}">Subscriptions</a>
  % if viewer:
  <form method="post" action="${links.dashboard}" class="inline who" id="logout">
    <input type="hidden" name="${csrf_field}" value="${csrf_token}">
    <span class="muted">key</span> <span class="key-name">${viewer}</span>
    <button type="submit" name="action" value="logout" class="quiet">Log out</button>
  </form>
  % endif
</header>
<main>
${next.body() | n}
</main>
</body>
</html>
