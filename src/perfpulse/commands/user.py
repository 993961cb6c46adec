"""`perfpulse user add|passwd|remove|list`: manage accounts on this machine (works while the daemon runs).

Passwords are read from the terminal (asked twice) or, with ``--password-stdin``, from the first line of
standard input — never from the command line, where other users' ``ps`` and the shell history see them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from pydantic import ValidationError

from perfpulse.config import ConfigFileError, load_settings
from perfpulse.server.accounts import AccountError, AccountStore, check_password
from perfpulse.server.security import SetupGate


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("user", help="add, change, remove or list dashboard users")
    p.add_argument("--config", type=Path, help="TOML settings file (default $PERFPULSE_CONFIG)")
    p.add_argument("--data-dir", type=Path, help="the daemon's data directory")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--role", choices=["admin", "viewer"], default="viewer")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    pw = actions.add_parser("passwd", help="set a user's password (ends their sessions)")
    pw.add_argument("username")
    pw.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    rm = actions.add_parser("remove", help="remove a user with their sessions and tokens")
    rm.add_argument("username")
    actions.add_parser("list", help="list users")
    p.set_defaults(func=run)


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        return check_password(line)
    if not sys.stdin.isatty():
        raise AccountError("no terminal to ask for the password; pass --password-stdin and pipe it in")
    first = getpass.getpass("Password: ")
    check_password(first)
    if getpass.getpass("Password (again): ") != first:
        raise AccountError("the two passwords differ")
    return first


def run(args: argparse.Namespace) -> int:
    try:
        overrides = {"data_dir": args.data_dir} if args.data_dir else {}
        settings = load_settings(args.config, **overrides)
    except (ConfigFileError, ValidationError) as exc:
        print(f"perfpulse user: {exc}", file=sys.stderr)
        return 2
    store = AccountStore(settings.db_path)
    try:
        if args.action == "list":
            users = store.list_users()
            if not users:
                print("no users yet")
            for u in users:
                print(f"{u.username}\t{u.role}")
        elif args.action == "add":
            password = read_password(args.password_stdin)
            user = store.add_user(args.username, password, args.role)
            if user.role == "admin":
                SetupGate(settings.data_dir).close()
            print(f"added {user.role} {user.username}")
        elif args.action == "passwd":
            if store.get_user(args.username) is None:
                raise AccountError(f"no user {args.username!r}")
            password = read_password(args.password_stdin)
            store.set_password(args.username, password)
            print(f"password of {args.username} changed; their sessions have ended")
        elif args.action == "remove":
            store.remove_user(args.username)
            print(f"removed {args.username}")
    except AccountError as exc:
        print(f"perfpulse user: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        store.close()
    return 0
