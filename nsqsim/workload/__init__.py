"""The simulated clients: producers and consumers speaking V2 over the simulated network.

This package is the one place that talks the client side of the protocol,
built on ``broker.wire.v2``'s encoders and ``FrameParser`` (``wire.py``).  It
stands in for the project's client core (``broker/client``) until that lands;
the cluster uses only ``Producer`` and ``Consumer`` (``start``, ``stop``,
``stall``, ``unstall``, ``crash``), so swapping the wire handling for the
client core changes this package alone.

Behaviour follows go-nsq where it matters to what the broker sees:

* A producer holds one connection to its nsqd, IDENTIFYs, then publishes at
  its rate (Poisson or fixed spacing), one PUB (or DPUB) per message, or an
  MPUB of ``batch`` messages at a time (go-nsq's ``MultiPublish``).  Answers
  come back in order, so each OK or error answers the oldest unanswered publish.  A publish with no
  connection fails at once; a lost connection fails every unanswered publish
  (their outcome is unknown: nsqd may have taken them) and redials after
  ``reconnect_delay``.  A connection silent for ``read_timeout`` is dropped.
* A consumer finds nsqd nodes through nsqlookupd's ``/lookup`` (polled every
  ``lookup_interval``) or a fixed list, holds one connection per node,
  IDENTIFYs, SUBs and spreads ``max_in_flight`` over its connections as RDY.
  Its handler draws, per message, to finish, requeue, never answer (nsqd
  must time the message out) or crash the whole consumer process, after a
  handling time drawn from ``handler_time``; handlers that finish within the
  same ``handler_tick`` answer in one write.  It answers heartbeats with NOP
  and drops a connection that is silent for two heartbeat intervals.

Message bodies start with the message's key, ``<producer host>:<sequence>|``,
padded to the drawn size, so deliveries can be matched to publishes.
"""

from __future__ import annotations

from nsqsim.workload.consumer import Consumer
from nsqsim.workload.producer import Producer
from nsqsim.workload.wire import message_key

__all__ = ["Consumer", "Producer", "message_key"]
