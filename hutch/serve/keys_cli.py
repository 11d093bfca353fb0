"""``hutch keys``: add, list and revoke API keys in the key file the ini names.

A running gateway notices each change within a few seconds (``hutch.auth.live_keys``).
``add`` prints only the new secret, on stdout, so it can be captured
(``KEY=$(hutch keys add ...)``); the file keeps only its SHA-256 digest.
"""

import argparse
import os
import sys

from hutch.auth.keyfile import add_key, list_keys, revoke_key

DESCRIPTION = "Manage the API keys in the key file that the ini names (auth.key_file)."


def add_parser(commands, ini_help, formatter_class=argparse.ArgumentDefaultsHelpFormatter):
    keys = commands.add_parser(
        "keys",
        help="add, list or revoke API keys",
        description=DESCRIPTION,
        formatter_class=formatter_class,
    )
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="{add,list,revoke}")
    add = actions.add_parser(
        "add",
        help="add a key; print its new secret",
        description="Add a key with the given permissions and print its new secret (only that) on "
        "stdout. The key file keeps only the secret's SHA-256 digest: keep the secret safe.",
        epilog="Permissions: '*' (everything), 'metrics', or idiom:pattern with idiom one of broadcast, "
        "notify, register, rpc, watch; e.g. 'notify:patient.*' 'rpc:api/*'.",
        formatter_class=formatter_class,
    )
    add.add_argument("name", help="1-64 characters of A-Z a-z 0-9 _ . -")
    add.add_argument("permissions", nargs="+", metavar="PERMISSION", help="what the key may do")
    listing = actions.add_parser(
        "list",
        help="list the keys (names and permissions, never secrets)",
        description="List every key of the ini and of its key file: name, permissions, and where it is "
        "kept. Secrets are never shown.",
        formatter_class=formatter_class,
    )
    revoke = actions.add_parser(
        "revoke",
        help="remove a key from the key file",
        description="Remove a key from the key file; running gateways refuse it within seconds.",
        formatter_class=formatter_class,
    )
    revoke.add_argument("name", help="the key to remove")
    for parser in (add, listing, revoke):
        parser.add_argument("--ini", default=None, help=ini_help)
    return keys


def key_settings(raw):
    """The key file the ini names, and the names of the keys the ini defines itself."""
    key_file = raw.get("auth.key_file")
    if not key_file:
        raise KeysError("the ini sets no auth.key_file; add e.g. 'auth.key_file = %(here)s/var/api-keys'")
    ini_keys = {
        key.removeprefix("auth.key."): raw.get("auth.permissions." + key.removeprefix("auth.key."), "")
        for key in raw
        if key.startswith("auth.key.")
    }
    return key_file, ini_keys


class KeysError(Exception):
    """``hutch keys`` cannot do what was asked; the message says why."""


def run(args, load_ini):
    """Carry out ``hutch keys ...``; return the exit status.

    ``load_ini(args)`` is ``(ini path, its [app:main] settings)``, read as ``hutch serve`` reads it.
    """
    try:
        ini, raw = load_ini(args)
        key_file, ini_keys = key_settings(raw)
        if args.keys_command == "add":
            print(add_key(key_file, args.name, args.permissions, taken=ini_keys))
        elif args.keys_command == "revoke":
            if args.name in ini_keys:
                raise KeysError(f"key {args.name!r} is defined in {ini}; remove auth.key.{args.name} there")
            revoke_key(key_file, args.name)
            print(f"revoked {args.name}", file=sys.stderr)
        else:
            show(ini, key_file, ini_keys)
    except (KeysError, ValueError, LookupError, OSError) as error:
        message = error.args[0] if isinstance(error, LookupError) and error.args else error
        print(f"hutch keys: {message}", file=sys.stderr)
        return 1
    return 0


def show(ini, key_file, ini_keys):
    where = f"ini ({os.path.basename(ini)})"
    rows = [(name, permissions.split(), where) for name, permissions in ini_keys.items()]
    rows += [(name, permissions, f"key file ({stored})") for name, permissions, stored in list_keys(key_file)]
    width = max([len(name) for name, _, _ in rows] + [4])
    print(f"{'NAME':<{width}}  {'KEPT IN':<18}  PERMISSIONS")
    for name, permissions, where in rows:
        print(f"{name:<{width}}  {where:<18}  {' '.join(permissions)}")
