"""Configuration: the TOML file, validated into typed, immutable models.

The Go original's ``goavail.toml`` loads unchanged; every key it knew keeps its
name and meaning. New keys are optional with safe defaults.

Shape (TOML key -> Python attribute, and the module of each subject)::

    failure_threshold, rise_threshold, interval, timeout, resync_interval,
    port, slack_addr, audit_file, node_name,
    quorum_alert_after                               -> Config.<same name>  (model)
    [[notifications]] -> Config.notifications (list of NotificationSection) (notifications)
    [Heartbeat]  -> Config.heartbeat   (HeartbeatSection)                  (notifications)
    [[checks]]   -> Config.checks      (list of CheckSection)              (checks)
    hooks_dir, hook_timeout                          -> Config.<same name>  (model)
    [Members]    -> Config.members     (Members)                           (members)
    [Cloudflare] -> Config.cloudflare  (CloudflareSection)                 (providers)
    [Route53]    -> Config.route53     (Route53Section)                    (providers)
    [Zonefile]   -> Config.zonefile    (ZonefileSection)                   (providers)
    [Server]     -> Config.server      (ServerSection; always present)     (web)
    overrides_file                     -> Config.overrides_file             (model)
    [RFC2136]    -> Config.rfc2136     (RFC2136Section)                    (providers)
    [[pools]]    -> Config.pools       (list of PoolSection)               (pools)
    [[names]]    -> Config.names       (list of NameSection)               (pools)
    [Brake]      -> Config.brake       (BrakeSection)                      (pools)
    providers                          -> Config.providers (provider names)  (model)
    [Proxy]      -> Config.proxy       (ProxySection; goavail proxy)       (proxy)
    [[floating_ips]] -> Config.floating_ips (list of FloatingIpSection)    (floating_ips)

Durations, ranges, names and addresses are in :mod:`goavail.config.values`; reading
the file in :mod:`goavail.config.load`. Durations are float seconds. Validation
collects every problem at once: :func:`load_config` raises :class:`ConfigError`, whose
``problems`` are lines like ``"Cloudflare.ip_addresses[1]: '300.1.1.1' is not a valid
IPv4 or IPv6 address"``. Secret values (``crypto_key``, ``slack_addr``, notification
and heartbeat URLs) never appear in error messages or reprs.

The package is pure: no logging, no environment reads; the only I/O is reading the
file in :func:`load_config`. This face hands on the names callers use.
"""

from goavail.config.checks import CHECK_TYPES, CheckSection
from goavail.config.errors import ConfigError
from goavail.config.floating_ips import FloatingIpSection
from goavail.config.load import load_config
from goavail.config.members import Members, cluster_mode
from goavail.config.model import (
    DEFAULT_PROVIDER,
    PROVIDERS,
    Config,
    check_runtime,
    choose_provider,
    fip_only,
    provider_sections,
    providers_in_use,
    run_providers,
)
from goavail.config.notifications import HeartbeatSection, NotificationSection
from goavail.config.pools import BrakeSection, NameSection, PoolSection
from goavail.config.providers import (
    CloudflareSection,
    DnsSection,
    RFC2136Section,
    Route53Section,
    ZonefileSection,
)
from goavail.config.proxy import RELAY_MODES, ProxySection, proxy_problems
from goavail.config.values import (
    Duration,
    Within,
    format_duration,
    parse_duration,
    qualify,
    split_host_port,
)
from goavail.config.web import ServerSection

__all__ = [
    "CHECK_TYPES",
    "DEFAULT_PROVIDER",
    "PROVIDERS",
    "RELAY_MODES",
    "BrakeSection",
    "CheckSection",
    "CloudflareSection",
    "Config",
    "ConfigError",
    "DnsSection",
    "Duration",
    "FloatingIpSection",
    "HeartbeatSection",
    "Members",
    "NameSection",
    "NotificationSection",
    "PoolSection",
    "ProxySection",
    "RFC2136Section",
    "Route53Section",
    "ServerSection",
    "Within",
    "ZonefileSection",
    "check_runtime",
    "choose_provider",
    "cluster_mode",
    "fip_only",
    "format_duration",
    "load_config",
    "parse_duration",
    "provider_sections",
    "providers_in_use",
    "proxy_problems",
    "qualify",
    "run_providers",
    "split_host_port",
]
