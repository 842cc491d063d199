"""The container image, built with podman from the Dockerfile and run with ``--network=none``.

The image is built as ``make image`` builds it (``podman build --format docker`` on the
wheelhouse ``make wheelhouse`` made), on a Debian base bootstrapped with ``mmdebstrap``
(python3, python3-venv, s6, serf): no package index and no Docker Hub are needed, and the
build itself runs inside the test session's private network namespace, so it is proven
offline. ``make test`` prepares the two inputs that need the network before pytest starts
(``make image-test-inputs``: the wheelhouse and the base tarball, cached in
``/var/cache/goavail-test``).

podman runs here with ``--storage-driver=vfs``, ``runc``, ``cgroupfs`` and no default
ulimits (what this kernel set-up allows), all given through ``CONTAINERS_CONF`` and
``CONTAINERS_STORAGE_CONF`` files in the cache directory, so the commands are the README's.
Its store is the cache directory's own: the base image, and the built image tagged with a
hash of its inputs (Dockerfile, .dockerignore, s6 tree, goavail's sources, the dependency
wheels, the base), stay there between runs; images of other hashes and every container are
removed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.e2e.harness import REPO

pytestmark = pytest.mark.e2e

CACHE = Path(os.environ.get("GOAVAIL_TEST_CACHE", "/var/cache/goavail-test"))
BASE_TAR = CACHE / "base-bookworm.tar"
"""``mmdebstrap --variant=minbase --include=python3,python3-venv,s6,serf bookworm`` (Makefile)."""
WHEELHOUSE = REPO / "build" / "wheelhouse"
IMAGE_REPO = "localhost/goavail-test"
BASE_REPO = "localhost/goavail-test-base"
GRACE = 10.0
"""Seconds ``podman stop`` waits before SIGKILL (its default, as Docker's); docs/deploy.md:
goavail exits within 5 s, ``timeout-kill`` is 10 s."""

CONTAINERS_CONF = """\
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

CONFIG = """\
# examples/local.toml with the container's paths
failure_threshold = 3
rise_threshold = 2
interval = 1
timeout = "500ms"
audit_file = "/var/lib/goavail/audit.jsonl"

[Zonefile]
path = "/var/lib/goavail/example.test.zone"
origin = "example.test"
hostnames = ["www"]
ip_addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
ttl = 60
"""
BROKEN = CONFIG.replace("failure_threshold = 3", "failure_threshold = -1").replace(
    'origin = "example.test"', 'origin = ""'
)

# The README's commands ("Deploy", "Container (s6)"), with podman for docker; the test adds
# --network=none, its own names and paths.
VALIDATE = (
    "run --rm -v {config}:/etc/goavail/goavail.toml:ro {image}"
    " goavail validate --config-file /etc/goavail/goavail.toml"
)
RUN = (
    "run -d --name {name} --cap-add NET_RAW -v {config}:/etc/goavail/goavail.toml:ro"
    " -v {state}:/var/lib/goavail {image}"
)
RELOAD = "exec {name} s6-svc -h /etc/s6/services/goavail"
STATUS = "exec {name} s6-svstat /etc/s6/services/goavail"
HEALTH = "healthcheck run {name}"
STOP = "stop {name}"
COMMANDS = (VALIDATE, RUN, RELOAD, STATUS, HEALTH, STOP)


def podman_env() -> dict[str, str]:
    """The environment for podman: this machine's settings and the cache's own store."""
    CACHE.mkdir(parents=True, exist_ok=True)
    conf = CACHE / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    storage = CACHE / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "vfs"\ngraphroot = "{CACHE / "storage"}"\n'
        'runroot = "/run/goavail-test/containers"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage)}


def podman(
    args: Sequence[str] | str, *, check: bool = True, timeout: float = 120, **fmt: str
) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` (a template from above is formatted with ``fmt`` and split)."""
    argv = args.format(**fmt).split() if isinstance(args, str) else list(args)
    done = subprocess.run(
        ["podman", *argv], env=podman_env(), capture_output=True, text=True,
        check=False, timeout=timeout,
    )  # fmt: skip
    if check:
        assert done.returncode == 0, f"podman {' '.join(argv)}: {done.returncode}\n{done.stderr}"
    return done


def inputs_digest(base_id: str) -> str:
    """sha256 of what the image is built from (the goavail wheel by its sources)."""
    digest = hashlib.sha256(base_id.encode())
    files = [
        REPO / "Dockerfile",
        REPO / ".dockerignore",
        REPO / "pyproject.toml",
        REPO / "README.md",
    ]
    files += sorted(p for p in (REPO / "s6").rglob("*") if p.is_file())
    files += sorted(
        p for p in (REPO / "goavail").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    for path in files:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
        digest.update(oct(path.stat().st_mode & 0o777).encode())
    digest.update(" ".join(sorted(p.name for p in WHEELHOUSE.glob("*.whl"))).encode())
    return digest.hexdigest()[:16]


def remove_tags(repo: str) -> None:
    """Remove every image of ``repo`` (those of earlier inputs) from the test's store."""
    for old in podman(["images", "--format", "{{.Repository}}:{{.Tag}}", repo]).stdout.split():
        podman(["rmi", "--force", old], check=False)


@pytest.fixture(scope="module")
def image() -> str:
    """The image built from this tree (cached by :func:`inputs_digest`); its name."""
    if shutil.which("podman") is None or not BASE_TAR.exists() or not WHEELHOUSE.is_dir():
        pytest.skip("needs podman and `make image-test-inputs` (make test runs it)")
    base = (
        f"{BASE_REPO}:{hashlib.sha256(str(BASE_TAR.stat().st_mtime_ns).encode()).hexdigest()[:12]}"
    )
    if podman(["image", "exists", base], check=False).returncode != 0:
        for old in podman(
            ["images", "--format", "{{.Repository}}:{{.Tag}}", BASE_REPO]
        ).stdout.split():
            podman(["rmi", "--force", old], check=False)
        podman(
            ["import", "--change", "ENV=PATH=/usr/sbin:/usr/bin:/sbin:/bin", str(BASE_TAR), base]
        )
    base_id = podman(["image", "inspect", "--format", "{{.Id}}", base]).stdout.strip()
    name = f"{IMAGE_REPO}:{inputs_digest(base_id)}"
    if podman(["image", "exists", name], check=False).returncode != 0:
        for old in podman(
            ["images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPO]
        ).stdout.split():
            podman(["rmi", "--force", old], check=False)
        # what `make image BASE_IMAGE=... IMAGE=...` runs; BUILDAH_LAYERS=false: one commit,
        # not one per instruction (each a full copy of the tree with vfs)
        done = subprocess.run(
            ["podman", "build", "--format", "docker", "--build-arg", f"BASE_IMAGE={base}",
             "--tag", name, "."],
            cwd=REPO, env={**podman_env(), "BUILDAH_LAYERS": "false"},
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        podman(["image", "prune", "--force"], check=False)
    return name


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The config file and the state directory (owned by the image's user 10001)."""
    (tmp_path / "goavail.toml").write_text(CONFIG)
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(REPO / "examples" / "example.test.zone", state / "example.test.zone")
    for path in (state, state / "example.test.zone"):
        os.chown(path, 10001, 10001)
    return tmp_path


@pytest.fixture
def container(image: str, site: Path) -> Iterator[str]:
    """A running container of the image (removed afterwards); its name."""
    name = f"goavail-test-{os.getpid()}"
    podman(
        RUN.replace("run -d", "run -d --network=none"), name=name, image=image,
        config=str(site / "goavail.toml"), state=str(site / "state"),
    )  # fmt: skip
    try:
        yield name
    finally:
        podman(["rm", "--force", "--time", "0", name], check=False)


def wait_for(what: str, check: object, timeout: float = 30.0) -> None:
    """Poll ``check()`` (a callable returning a truthy value) until it holds."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def health_code(name: str) -> int:
    """The HTTP status of /_health, asked from inside the container."""
    script = (
        "import urllib.request as u, urllib.error as e\n"
        "try: print(u.urlopen('http://127.0.0.1:8080/_health', timeout=4).status)\n"
        "except e.HTTPError as x: print(x.code)\n"
        "except OSError: print(0)\n"
    )
    done = podman(["exec", name, "python", "-c", script], check=False)
    return int(done.stdout.strip() or 0)


def goavail_pid(name: str) -> int:
    """goavail's pid inside the container (s6-svstat), 0 when it is down."""
    done = podman(STATUS, name=name, check=False)
    words = done.stdout.split()
    return int(words[2].rstrip(")")) if words[:2] == ["up", "(pid"] else 0


def test_readme_gives_the_commands_the_test_runs() -> None:
    readme = " ".join((REPO / "README.md").read_text().replace("\\\n", " ").split())
    for command in COMMANDS:
        line = command.format(
            name="goavail", image="goavail", config="/srv/goavail/goavail.toml",
            state="/srv/goavail/state",
        )  # fmt: skip
        if command is RUN:  # the README puts its own options before the image
            line = line.removesuffix(" goavail")
        assert f"docker {line}" in readme or f"podman {line}" in readme, line


def test_validate_in_the_image(image: str, site: Path) -> None:
    validate = VALIDATE.replace("run --rm", "run --rm --network=none")
    config = str(site / "goavail.toml")
    done = podman(validate, check=False, image=image, config=config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stdout
    (site / "goavail.toml").write_text(BROKEN)
    done = podman(validate, check=False, image=image, config=config)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "failure_threshold" in done.stdout + done.stderr
    assert "origin" in done.stdout + done.stderr


def test_container_runs_supervises_reloads_and_stops(container: str, site: Path) -> None:
    name = container
    wait_for("/_health 200", lambda: health_code(name) == 200)
    logs = podman(["logs", name]).stdout + podman(["logs", name]).stderr
    assert "DRY-RUN" in logs and "provider zonefile" in logs, logs
    assert podman(HEALTH, name=name, check=False).returncode == 0
    status = podman(["inspect", "--format", "{{.State.Healthcheck.Status}}", name]).stdout
    assert status.strip() == "healthy"

    # goavail runs as the image's user with CAP_NET_RAW (bit 13) only
    pid = goavail_pid(name)
    proc = podman(["exec", name, "cat", f"/proc/{pid}/status"]).stdout
    fields = dict(line.split(":", 1) for line in proc.splitlines() if ":" in line)
    assert fields["Uid"].split() == ["10001"] * 4
    assert int(fields["CapEff"], 16) == 1 << 13
    assert podman(["exec", name, "readlink", "/proc/1/exe"]).stdout.strip().endswith("s6-svscan")

    # a rejected reload: unhealthy (the old config keeps running); a good one: healthy again
    (site / "goavail.toml").write_text(BROKEN)  # in place: the bind mount follows the inode
    podman(RELOAD, name=name)
    wait_for("/_health 503", lambda: health_code(name) == 503)
    assert podman(HEALTH, name=name, check=False).returncode != 0
    assert goavail_pid(name) == pid
    (site / "goavail.toml").write_text(CONFIG)
    podman(RELOAD, name=name)
    wait_for("/_health 200", lambda: health_code(name) == 200)
    assert podman(HEALTH, name=name, check=False).returncode == 0

    # kill -9: s6 starts a new goavail, healthy again
    podman(["exec", name, "sh", "-c", f"kill -9 {pid}"])
    wait_for("a new goavail", lambda: goavail_pid(name) not in (0, pid))
    wait_for("/_health 200", lambda: health_code(name) == 200)

    # podman stop: SIGTERM to s6-svscan, a clean shutdown within the grace period
    started = time.monotonic()
    podman(STOP, name=name, timeout=GRACE + 20)
    took = time.monotonic() - started
    assert took < GRACE, f"podman stop took {took:.1f}s"
    assert podman(["inspect", "--format", "{{.State.ExitCode}}", name]).stdout.strip() == "0"
    logs = podman(["logs", name]).stdout
    assert logs.rstrip().splitlines()[-1] == (
        "s6-svscan: supervision tree stopped; goavail's last exit: exit code 0"
    ), logs[-2000:]
