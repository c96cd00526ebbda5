"""The simulated clients: producers and consumers built on the project's client core.

The workloads drive ``broker.client``'s sans-IO ``ProducerCore`` and
``ConsumerCore`` on the simulator's ports, so the clients in a simulation run
the very code production users run: the simulator adds only the application
around them (arrival rates, message sizes, handlers that finish, requeue,
time out, crash or stall) and records in the history what each client saw.
The cluster uses ``Producer`` and ``Consumer`` (``start``, ``stop``,
``stall``, ``unstall``, ``crash``).

Message bodies start with the message's key, ``<producer host>:<sequence>|``,
padded to the drawn size, so deliveries can be matched to publishes.
"""

from __future__ import annotations

from nsqsim.workload.consumer import Consumer
from nsqsim.workload.process import message_key
from nsqsim.workload.producer import Producer

__all__ = ["Consumer", "Producer", "message_key"]
