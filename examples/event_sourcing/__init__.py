"""Event sourcing with CQRS over two topics: an append-only event log and a compacted read model.

- ``commands``: validates a command against the account's state and appends its event to ``account-events``
  (keyed by account id, so one account's events stay in order on one partition).
- ``projector``: folds events into balances and writes each touched account's latest balance to the
  compacted ``account-balances`` (a tombstone when the account is closed).
- ``query``: rebuilds the read model by replaying ``account-balances`` from offset 0.
"""
