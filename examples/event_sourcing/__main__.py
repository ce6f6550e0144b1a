"""A scripted run: ``python -m examples.event_sourcing [--bootstrap 127.0.0.1:9092]``."""

from __future__ import annotations

import argparse
import uuid

from .commands import Accounts
from .projector import Projector
from .query import rebuild
from .topics import Topics, create_topics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument(
        "--replication-factor", type=int, default=3, help="of the two topics (1 on one broker)"
    )
    args = parser.parse_args()
    topics = Topics()
    create_topics(args.bootstrap, topics, replication_factor=args.replication_factor)

    # Fresh account ids per run: ids are never reused, and earlier runs' accounts stay in the log.
    run = uuid.uuid4().hex[:6]
    alice, bob, carol = (f"{name}-{run}" for name in ("alice", "bob", "carol"))
    accounts = Accounts(args.bootstrap, topics)
    for account in (alice, bob, carol):
        accounts.open(account)
    accounts.deposit(alice, 10_000)
    accounts.deposit(bob, 2_500)
    accounts.withdraw(alice, 1_200)
    accounts.deposit(carol, 700)
    accounts.withdraw(carol, 700)
    accounts.close(carol)
    print(f"commands appended; alice={accounts.balance(alice)} bob={accounts.balance(bob)} carol closed")

    projector = Projector(args.bootstrap, topics)
    try:
        projector.run_until_caught_up()
    finally:
        projector.close()
    view = rebuild(args.bootstrap, topics)
    print(f"read model rebuilt from {topics.balances}: {len(view)} open accounts")
    for account in (alice, bob, carol):
        print(f"  {account}: {view[account].balance if account in view else 'closed'}")


if __name__ == "__main__":
    main()
