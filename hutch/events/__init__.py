"""The event tier: ``GET /events/{exchange}`` served by asyncio processes beside mod_wsgi."""
