"""Delivery guarantees in numbers: sweeps of simulated runs, their figures, plots, and replays.

The notebooks in ``notebooks/`` are calls into this package plus prose, so
that what they compute is tested like the rest of the code:

=============  ===============================================================
``sweep``      run a base configuration at every point of a parameter grid and
               every seed, one row of figures per run (``sweep``, ``grid``,
               ``with_overrides``, ``crash_faults``, ``stall_faults``,
               ``loss_sweep``)
``figures``    what one history says: per (message, channel) outcomes as the model
               checker judged them, loss and duplicate rates, latency
               percentiles, rediscovery time
``plots``      plots of sweeps, each with a caption naming the configuration,
               what was varied and the seeds
``replay``     one run again from its seed, one message's events, its timeline
               plot and the checkers' verdict on it
=============  ===============================================================

``python -m nsqsim.analysis plot-loss OUT.png`` draws the README's plot of
loss against crash rate (see ``__main__``).  pandas and matplotlib are the
``analysis`` extra: ``pip install -e '.[analysis]'``.
"""

from nsqsim.analysis.figures import (
    DataFrame,
    events_of,
    history_events,
    history_frame,
    latency_percentiles,
    message_outcomes,
    rediscovery_time,
    run_figures,
)
from nsqsim.analysis.plots import add_caption, plot_loss, plot_percentiles, plot_rate
from nsqsim.analysis.replay import (
    Replay,
    message_events,
    message_verdict,
    pick_message,
    plot_message_timeline,
    replay,
)
from nsqsim.analysis.sweep import (
    DURABILITY_MODES,
    Point,
    Sweep,
    crash_faults,
    grid,
    loss_sweep,
    read_table,
    seeds_text,
    stall_faults,
    sweep,
    with_overrides,
)

__all__ = [
    "DURABILITY_MODES",
    "DataFrame",
    "Point",
    "Replay",
    "Sweep",
    "add_caption",
    "crash_faults",
    "events_of",
    "grid",
    "history_events",
    "history_frame",
    "latency_percentiles",
    "loss_sweep",
    "message_events",
    "message_outcomes",
    "message_verdict",
    "pick_message",
    "plot_loss",
    "plot_message_timeline",
    "plot_percentiles",
    "plot_rate",
    "read_table",
    "rediscovery_time",
    "replay",
    "run_figures",
    "seeds_text",
    "stall_faults",
    "sweep",
    "with_overrides",
]
