"""Notifications: Slack, Mattermost and generic webhooks, asynchronous and coalesced.

* :mod:`goavail.notify.events` — events and message bodies (pure).
* :mod:`goavail.notify.sink` — one destination: bounded queue, coalescing, retrying POST.
* :mod:`goavail.notify.notifier` — builds sinks from the config, fans events out.
"""

from goavail.notify.events import Event
from goavail.notify.notifier import Notifier, sink_settings
from goavail.notify.sink import Sink, SinkSettings, SinkStats

__all__ = ["Event", "Notifier", "Sink", "SinkSettings", "SinkStats", "sink_settings"]
