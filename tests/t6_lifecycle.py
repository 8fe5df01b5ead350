"""The zram life cycle as distribution scripts and test suites drive it (tests/zram_lifecycle.sh):
run against the kernel's zram, where the transcript must show the kernel's errnos at the expected
steps, and against zramd, whose transcript must match the kernel's line by line.

The script finds everything through three path prefixes (attribute directories, block devices,
hot_add/hot_remove), so the same script drives both; its transcript names devices by ordinal, so
two runs compare as text.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.mount_util import check_daemon_log, force_cleanup, fuse_unavailable, zramd

SCRIPT = Path(__file__).with_name("zram_lifecycle.sh")
SCRIPT_TIMEOUT = 600  # seconds; the kernel takes about a second with 3 devices

KERNEL_PREFIXES = {
    "ZRAM_SYSFS": "/sys/block/zram",
    "ZRAM_DEV": "/dev/zram",
    "ZRAM_CONTROL": "/sys/class/zram-control",
}

TOOLS = ("mkswap", "swapon", "swapoff", "mkfs.ext4", "mount", "umount", "mountpoint", "dd", "stat")

# The steps at which the kernel refuses, and with which errno: every other step of the transcript
# must be "ok" (a command that succeeded) or "yes" (a coarse check of mm_stat, io_stat and the like).
EXPECTED_ERRNOS_PER_DEVICE = [
    ("reset_while_swapon", "EBUSY"),  # reset_store: the swap area holds the block device open
    ("disksize_while_initialised", "EBUSY"),  # disksize_store: only an uninitialised device is sized
    ("comp_algorithm_while_initialised", "EBUSY"),  # comp_algorithm_store: likewise
    ("disksize=foo", "EINVAL"),  # memparse("foo") is 0, and a zero disksize is refused
    ("comp_algorithm=nope", "EINVAL"),  # not a compressor the crypto API knows
    ("fill_1k_zeros", "ENOSPC"),  # the file system is full (ext4's, not the device's, limit)
    ("reset_while_mounted", "EBUSY"),  # the mounted file system holds the block device open
]
EXPECTED_ERRNOS_ONCE = [
    ("hot_remove_99999", "ENODEV"),  # hot_remove_store: no device with that id
]


def expected_errnos(devices: int) -> dict[str, str]:
    """Transcript step name → the errno the kernel gives there, for a run with `devices` devices."""
    expected = {f"dev{i}.{step}": errno for i in range(devices) for step, errno in EXPECTED_ERRNOS_PER_DEVICE}
    expected.update(EXPECTED_ERRNOS_ONCE)
    return expected


def kernel_zram_control_unavailable() -> str | None:
    """Why the script cannot run against the kernel's zram, or None when it can. (tests/kernel_zram.py's
    check is about zram0, which this script never touches: it needs hot_add instead.)"""
    control = Path(KERNEL_PREFIXES["ZRAM_CONTROL"])
    if not control.is_dir():
        return f"the kernel's zram has no {control} (modprobe zram; the script creates devices with hot_add)"
    if os.geteuid() != 0:
        return "creating and configuring the kernel's zram devices needs root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the script needs {', '.join(missing)}, not installed"
    return None


def zramd_prefixes(root: Path) -> dict[str, str]:
    """The script's prefixes for a zramd started on `root`: attribute directories and hot_add as the
    kernel lays them out, under `root`; the block devices' prefix is what zramd writes to
    zram-control/block_prefix (for example /dev/zramd/zram)."""
    return {
        "ZRAM_SYSFS": f"{root}/zram",
        "ZRAM_CONTROL": f"{root}/zram-control",
        "ZRAM_DEV": (root / "zram-control" / "block_prefix").read_text().strip(),
    }


def run_script(prefixes: dict[str, str], devices: int, work: Path) -> tuple[int, str]:
    """Run the script with `prefixes`, `devices` devices at once and scratch directory `work`; its
    status and transcript (stdout). Its stderr (raw messages and numbers) is left in work/stderr.log.
    A script that overruns SCRIPT_TIMEOUT gets SIGTERM, which its EXIT trap answers by cleaning up."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **prefixes, "DEVICES": str(devices), "WORK": str(work), "LC_ALL": "C"}
    with (work / "stderr.log").open("w") as stderr:
        proc = subprocess.Popen(
            ["bash", str(SCRIPT)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: a timeout stops dd and mkfs too
        )
        try:
            transcript, _ = proc.communicate(timeout=SCRIPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                transcript, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                transcript, _ = proc.communicate()
            transcript += f"(killed after {SCRIPT_TIMEOUT} s)\n"
    return proc.returncode, transcript


def script_log(work: Path) -> str:
    try:
        return (work / "stderr.log").read_text(errors="replace")
    except FileNotFoundError:
        return ""


def remove_leftovers(prefixes: dict[str, str], work: Path) -> list[str]:
    """Take down whatever a script run left behind (it records each id hot_add gave it in
    work/ids): mounts under `work`, swap areas, devices. The ids that were still there."""
    for line in Path("/proc/mounts").read_text().splitlines():
        where = line.split()[1]
        if where.startswith(f"{work}/"):
            subprocess.run(["umount", "-l", where], capture_output=True, check=False)
    try:
        ids = (work / "ids").read_text().split()
    except FileNotFoundError:
        return []
    left = []
    for id_ in ids:
        sysfs = Path(f"{prefixes['ZRAM_SYSFS']}{id_}")
        if not sysfs.exists():
            continue
        left.append(id_)
        subprocess.run(["swapoff", f"{prefixes['ZRAM_DEV']}{id_}"], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            (sysfs / "reset").write_text("1")
        with contextlib.suppress(OSError):
            Path(prefixes["ZRAM_CONTROL"], "hot_remove").write_text(id_)
    return left


def steps(transcript: str) -> list[tuple[str, str]]:
    """The transcript's (step, result) pairs, in order."""
    pairs = []
    for line in transcript.splitlines():
        assert line.startswith("STEP "), f"not a transcript line: {line!r}"
        name, _, result = line.removeprefix("STEP ").rpartition(": ")
        pairs.append((name, result))
    return pairs


def kernel_transcript(devices: int, work: Path) -> str:
    """The script's transcript against the kernel's zram, checked against the expected errnos;
    skips when the kernel's zram cannot be used. Saved to work/transcript.txt."""
    reason = kernel_zram_control_unavailable()
    if reason:
        pytest.skip(reason)
    try:
        status, transcript = run_script(KERNEL_PREFIXES, devices, work)
    finally:
        left = remove_leftovers(KERNEL_PREFIXES, work)
    (work / "transcript.txt").write_text(transcript)
    print(f"kernel transcript, {devices} device(s), saved in {work / 'transcript.txt'}:\n{transcript}")
    log = script_log(work)
    assert status == 0, f"the script exited with {status}:\n{transcript}\n{log}"
    assert not left, f"the script left kernel zram devices {left} behind:\n{log}"

    results = steps(transcript)
    names = [name for name, _ in results]
    assert len(names) == len(set(names)), f"a step name repeats:\n{transcript}"
    expected = expected_errnos(devices)
    missing = sorted(set(expected) - set(names))
    assert not missing, f"steps missing from the transcript: {missing}\n{transcript}\n{log}"
    wrong = [
        f"{name}: {result} (expected {expected.get(name, 'ok or yes')})"
        for name, result in results
        if (result != expected[name] if name in expected else result not in ("ok", "yes"))
    ]
    assert not wrong, "steps with an unexpected result:\n" + "\n".join(wrong) + f"\n\n{transcript}\n{log}"
    return transcript


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 3])
def test_kernel_zram_lifecycle(devices: int, tmp_path: Path) -> None:
    kernel_transcript(devices, tmp_path / "kernel")


@pytest.mark.slow
@pytest.mark.parametrize("devices", [1, 3])
def test_zramd_follows_the_kernel_script(devices: int, tmp_path: Path) -> None:
    """zramd started with no device, driven by the same script through its own prefixes: the same
    steps with the same results as the kernel's, line by line."""
    reference = kernel_transcript(devices, tmp_path / "kernel")
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)

    root = tmp_path / "zramd"
    root.mkdir()
    work = tmp_path / "zramd-work"
    prefixes: dict[str, str] | None = None
    left: list[str] = []
    try:
        zramd("start", str(root), "--devices", "0")
        prefixes = zramd_prefixes(root)
        status, transcript = run_script(prefixes, devices, work)
    finally:
        if prefixes is not None:
            left = remove_leftovers(prefixes, work)
        stop = zramd("stop", str(root), "--force", check=False)
        if stop.returncode != 0:
            force_cleanup(root)

    log = script_log(work)
    diff = "\n".join(
        difflib.unified_diff(reference.splitlines(), transcript.splitlines(), "kernel", "zramd", lineterm="")
    )
    assert transcript.splitlines() == reference.splitlines(), (
        f"zramd's transcript differs from the kernel's:\n{diff}\n\nthe script's stderr on zramd:\n{log}"
    )
    assert status == 0, f"the script exited with {status} on zramd:\n{log}"
    assert not left, f"the script left zramd devices {left} behind:\n{log}"
    assert stop.returncode == 0, f"zramd stop --force {root} failed ({stop.returncode}): {stop.stderr}"
    check_daemon_log(root)
