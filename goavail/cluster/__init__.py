"""Cluster mode: agents gossip their verdicts through Serf and decide together.

``wire`` is the gossip message format (sealing, opening, replay and clock-skew checks).
"""
