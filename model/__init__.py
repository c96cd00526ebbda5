"""An executable specification of NSQ's delivery guarantees (docs/guarantees.md).

``state`` and ``disklog`` are the state, ``spec`` (with ``transitions``) the
state machine, ``invariants`` the guarantees, ``explore`` the bounded
exhaustive checker (``python -m model.explore``), ``history`` and ``checker``
the same guarantees judged on recorded histories.  Nothing here imports the
broker: the broker is checked against this, not the other way round.
"""
