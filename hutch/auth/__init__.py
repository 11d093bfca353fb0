"""Who may do what: API keys and their permissions, the key file, dashboard sessions, stream tickets.

``policy`` checks an ``Authorization`` against the keys; ``keyfile`` and
``live_keys`` keep a running gateway following ``hutch keys``' changes;
``session_store`` and ``csrf`` are the dashboard's sessions and their guards;
``tickets`` lets a logged-in browser open an event stream.

Used by every tier; may import the vocabulary (``hutch.errors``,
``hutch.files``) and nothing else of Hutch.
"""
