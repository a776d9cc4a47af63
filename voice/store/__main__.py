"""``python -m voice.store {upgrade,current,revision}``: database maintenance."""

from __future__ import annotations

import argparse

from voice.store.migrate import current_revision, head_revision, make_revision
from voice.store.store import Store


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run one maintenance command."""
    parser = argparse.ArgumentParser(prog="python -m voice.store", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("upgrade", "current"):
        p = sub.add_parser(name, help=f"{name} the database at --url (both migrate it to head)")
        p.add_argument(
            "--url",
            default=None,
            help="SQLAlchemy URL (default: the one voice serve uses, $NEXTLINE_DB_URL or data/nextline.db)",
        )
    rev = sub.add_parser(
        "revision", help="write a new revision file into voice/store/migrations/versions"
    )
    rev.add_argument(
        "-m", "--message", required=True, help="what the revision does, e.g. 'add suggestions'"
    )
    rev.add_argument(
        "--empty", action="store_true", help="do not autogenerate from the table classes"
    )
    args = parser.parse_args(argv)

    if args.command == "revision":
        make_revision(args.message, autogenerate=not args.empty)
        return
    with Store.open(args.url) as store, store.engine.connect() as connection:
        print(f"{store.url}: at revision {current_revision(connection)} (head {head_revision()})")


if __name__ == "__main__":
    main()
