"""Tier 8: the systemd integration in systemd/ -- the installer, the generator, the unit files'
ordering and capabilities, `systemd-analyze verify` on the units, and the daemon run exactly as
zramd.service runs it (argv[0] "@zramd", its capability bounding set, sd_notify), with the setup
units' `zramd up` / `zramd down` against it.

Everything is installed into temporary directories, against a throwaway "venv" of symlinks to
the real one, so the test never touches /etc, systemd or the project's .venv. No test needs
systemd as PID 1 (this machine may not run it); what only a real boot and shutdown can show is
listed in docs/systemd.md.
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import importlib.util
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.mount_util import force_cleanup, fuse_unavailable
from zramd.host.loop import bound_under
from zramd.host.mounts import mount_entry
from zramd.host.rundir import DEFAULT_ROOT, block_link_dir, logfile_for

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = REPO / "systemd"
CONFIG_IN_UNITS = "/etc/zramd/zramd.conf"
ROOT_IN_UNITS = str(DEFAULT_ROOT)  # /run/zramd/sys

# A swap device and a file system, with values that are not the defaults.
SAMPLE = """\
[zram0]
zram-size = 64
swap-priority = 42
compression-algorithm = lz4

[zram1]
zram-size = 64
fs-type = ext4
mount-point = {mount_point}
options = noatime
"""
DAEMON_DESCRIPTION = "zramd compressed RAM disks zram0 (64M, lz4), zram1 (64M, lzo)"  # from the generator

# Settings that run a service in namespaces of its own -- a FUSE mount made in a private mount
# namespace would be invisible to the rest of the system -- or, like ProtectClock= (a device
# policy), cut it off from /dev/fuse.
NAMESPACE_SETTINGS = {
    "PrivateTmp", "PrivateDevices", "PrivateNetwork", "PrivateUsers", "PrivateIPC", "PrivateMounts",
    "ProtectSystem", "ProtectHome", "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs",
    "ProtectControlGroups", "ProtectClock", "ProtectHostname", "ProtectProc", "ProcSubset",
    "ReadOnlyPaths", "ReadWritePaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths",
    "TemporaryFileSystem", "BindPaths", "BindReadOnlyPaths", "RootDirectory", "RootImage",
    "MountAPIVFS", "MountFlags", "NetworkNamespacePath", "IPCNamespacePath", "DynamicUser",
    "LogNamespace", "DevicePolicy", "DeviceAllow",
}  # fmt: skip
CAPABILITIES = {"CAP_DAC_OVERRIDE": 1, "CAP_IPC_LOCK": 14, "CAP_SYS_ADMIN": 21, "CAP_SYS_RESOURCE": 24}


# ------------------------------------------------------------------------------ helpers

Unit = dict[str, dict[str, list[str]]]


def parse_unit(*texts: str) -> Unit:
    """A unit file and its drop-ins, merged: section -> key -> every value, in order."""
    sections: Unit = {}
    for text in texts:
        current: dict[str, list[str]] | None = None
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                current = sections.setdefault(line[1:-1], {})
                continue
            assert current is not None, f"setting outside a section: {raw!r}"
            key, sep, value = line.partition("=")
            assert sep, f"not a setting: {raw!r}"
            current.setdefault(key.strip(), []).append(value.strip())
    return sections


def words(unit: Unit, section: str, key: str) -> list[str]:
    return [word for value in unit.get(section, {}).get(key, []) for word in value.split()]


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


@dataclass
class Install:
    root: Path
    bin: Path  # the throwaway venv's bin/
    zramd: Path
    units: Path
    lib: Path
    generators: Path
    result: subprocess.CompletedProcess[str]

    @property
    def generator(self) -> Path:
        return self.lib / "zramd-generator"

    def unit(self, name: str) -> Unit:
        return parse_unit((self.units / name).read_text())


def make_venv(root: Path) -> Path:
    """A venv made of symlinks to the one running the tests, with its own bin/ (the installer
    adds "@zramd" there) and a zramd console script whose '#!' names this bin/python."""
    real = Path(sys.prefix)
    if not (real / "pyvenv.cfg").exists():
        pytest.skip("the tests must run in the project's venv (.venv/bin/python -m pytest)")
    venv = root / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").symlink_to(real / "pyvenv.cfg")
    (venv / "lib").symlink_to(real / "lib")
    (venv / "bin" / "python").symlink_to(sys.executable)
    script = (real / "bin" / "zramd").read_text().split("\n", 1)[1]
    (venv / "bin" / "zramd").write_text(f"#!{venv / 'bin' / 'python'}\n{script}")
    (venv / "bin" / "zramd").chmod(0o755)
    return venv / "bin"


def run_install(root: Path, *extra: str) -> Install:
    bin_dir = root / "venv" / "bin" if (root / "venv").exists() else make_venv(root)
    paths = [root / "units", root / "lib", root / "generators"]
    result = subprocess.run(
        [
            str(SYSTEMD / "install"),
            "--zramd", str(bin_dir / "zramd"),
            "--unit-dir", str(paths[0]),
            "--lib-dir", str(paths[1]),
            "--generator-dir", str(paths[2]),
            *extra,
        ],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    return Install(root, bin_dir, bin_dir / "zramd", paths[0], paths[1], paths[2], result)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Install:
    install = run_install(tmp_path_factory.mktemp("install"))
    assert install.result.returncode == 0, install.result.stderr
    return install


@dataclass
class Generated:
    out: Path
    result: subprocess.CompletedProcess[str]

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.out)) for p in self.out.rglob("*") if not p.is_dir())

    def dropin(self, unit: str) -> Unit:
        return parse_unit((self.out / f"{unit}.d" / "50-zramd-generator.conf").read_text())


def generate(install: Install, tmp: Path, config: str | None, *dirs: str) -> Generated:
    """Run the installed generator on `config` (None: no file) as systemd would (three
    directories), or with `dirs` as its arguments."""
    path = tmp / "zramd.conf"
    if config is not None:
        path.write_text(config)
    out = tmp / "generator"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYSTEMD_")}
    env["ZRAMD_GENERATOR_CONFIG"] = str(path)
    args = list(dirs) if dirs else [str(out)] * 3
    result = subprocess.run(
        [str(install.generator), *args], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    return Generated(out, result)


def sample(tmp: Path) -> str:
    return SAMPLE.format(mount_point=tmp / "scratch")


# ------------------------------------------------------------------------------ install


def test_install_renders_the_templates_and_enables_nothing(installed: Install) -> None:
    assert "nothing enabled" in installed.result.stdout
    assert sorted(p.name for p in installed.units.iterdir()) == ["zramd-setup@.service", "zramd.service"]
    for unit in installed.units.iterdir():
        assert not re.search(r"@[A-Z_]+@", unit.read_text()), f"{unit.name}: a placeholder is left"
    assert not installed.generators.exists()  # --enable would link the generator there
    link = installed.bin / "@zramd"
    assert link.is_symlink() and os.readlink(link) == "python"
    generator = installed.generator.read_text().splitlines()
    assert generator[0] == f"#!{installed.bin / 'python'}"
    assert f'UNIT_DIR = "{installed.units}"  # set by systemd/install' in generator
    assert os.access(installed.generator, os.X_OK)


def test_install_refuses_a_relative_or_missing_zramd(tmp_path: Path) -> None:
    for zramd in ("relative/zramd", str(tmp_path / "nowhere" / "zramd")):
        result = subprocess.run(
            [str(SYSTEMD / "install"), "--zramd", zramd, "--unit-dir", str(tmp_path / "u")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 1, result
        assert zramd in result.stderr
    assert not (tmp_path / "u").exists()


@pytest.mark.skipif(Path("/proc/1/comm").read_text().strip() == "systemd", reason="would start units")
def test_install_enable_links_the_generator_and_uninstall_removes_everything(tmp_path: Path) -> None:
    install = run_install(tmp_path, "--enable")
    assert install.result.returncode == 0, install.result.stderr
    assert os.readlink(install.generators / "zramd-generator") == str(install.generator)
    assert "systemd is not PID 1" in install.result.stdout
    result = run_install(tmp_path, "--uninstall").result
    assert result.returncode == 0, result.stderr
    assert not list(install.units.iterdir())
    assert not (install.generators / "zramd-generator").exists()
    assert not install.lib.exists()
    assert not (install.bin / "@zramd").exists()


def test_install_replaces_the_per_device_daemon_template(tmp_path: Path) -> None:
    """Earlier versions installed zramd@.service, one daemon per device; it goes on install."""
    (tmp_path / "units").mkdir()
    (tmp_path / "units" / "zramd@.service").write_text("[Service]\nExecStart=/bin/true\n")
    install = run_install(tmp_path)
    assert install.result.returncode == 0, install.result.stderr
    assert f"removed {install.units / 'zramd@.service'}" in install.result.stdout
    assert sorted(p.name for p in install.units.iterdir()) == ["zramd-setup@.service", "zramd.service"]


# ------------------------------------------------------------------------------ the unit files


def test_daemon_unit(installed: Install) -> None:
    unit = installed.unit("zramd.service")
    service = unit["Service"]
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "LimitMEMLOCK") == "infinity"
    assert one(unit, "Service", "OOMScoreAdjust") == "-1000"
    assert set(words(unit, "Service", "CapabilityBoundingSet")) == {
        "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_IPC_LOCK",
    }  # fmt: skip
    assert "AmbientCapabilities" not in service  # it runs as root
    assert "User" not in service
    # Never stopped at shutdown: swap on it may stay active until systemd-shutdown.
    assert one(unit, "Unit", "DefaultDependencies") == "no"
    assert "Conflicts" not in unit["Unit"]
    assert "shutdown.target" not in words(unit, "Unit", "Before")
    assert one(unit, "Service", "Slice") == "system.slice"
    # It mounts FUSE and attaches a loop device per device; the setup units attach none.
    assert set(words(unit, "Unit", "Wants")) == {"modprobe@fuse.service", "modprobe@loop.service"}
    assert {"modprobe@fuse.service", "modprobe@loop.service"} <= set(words(unit, "Unit", "After"))
    # No private mount namespace: the FUSE mount must be everyone's.
    assert not NAMESPACE_SETTINGS & set(service), NAMESPACE_SETTINGS & set(service)
    # argv[0] "@zramd": spared by systemd-shutdown's killing spree.
    command = shlex.split(one(unit, "Service", "ExecStart"))
    assert command[0] == f"@{installed.bin / '@zramd'}"
    # One daemon on the default root, starting with no devices: the setup units hot_add them.
    assert command[1:] == ["@zramd", "-m", "zramd", "run", ROOT_IN_UNITS, "--devices", "0"]
    assert one(unit, "Service", "Environment").startswith(f"PATH={installed.bin}:")
    # zramd mounts only on an existing directory; a failed mkdir is the daemon's to explain.
    assert shlex.split(one(unit, "Service", "ExecStartPre")) == ["-/bin/mkdir", "-p", ROOT_IN_UNITS]
    assert "%i" not in (installed.units / "zramd.service").read_text()  # not a template any more


def test_setup_unit(installed: Install) -> None:
    unit = installed.unit("zramd-setup@.service")
    assert one(unit, "Service", "Type") == "oneshot"
    assert one(unit, "Service", "RemainAfterExit") == "yes"
    assert words(unit, "Unit", "BindsTo") == ["zramd.service"]
    assert words(unit, "Unit", "After") == ["zramd.service"]  # so it stops before the daemon
    assert "Wants" not in unit["Unit"]  # the daemon attaches the loop devices, not this unit
    assert one(unit, "Unit", "DefaultDependencies") == "no"
    assert "Conflicts" not in unit["Unit"]  # the generator adds it for file systems only
    assert one(unit, "Service", "Slice") == "system.slice"
    base = [str(installed.zramd), "--config", CONFIG_IN_UNITS, "--device", "%i"]
    assert shlex.split(one(unit, "Service", "ExecStart")) == [*base[:1], "up", *base[1:]]
    assert shlex.split(one(unit, "Service", "ExecStop")) == [*base[:1], "down", *base[1:]]
    assert set(words(unit, "Service", "CapabilityBoundingSet")) == {"CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"}
    assert not NAMESPACE_SETTINGS & set(unit["Service"])


# ------------------------------------------------------------------------------ the generator


def test_generator_swap_and_file_system(installed: Install, tmp_path: Path) -> None:
    gen = generate(installed, tmp_path, sample(tmp_path))
    assert gen.result.returncode == 0
    assert gen.result.stderr == ""
    assert gen.files() == [
        "local-fs.target.wants/zramd-setup@zram1.service",
        "run-zramd-sys.mount.d/50-zramd-generator.conf",
        "swap.target.wants/zramd-setup@zram0.service",
        "zramd-setup@zram0.service.d/50-zramd-generator.conf",
        "zramd-setup@zram1.service.d/50-zramd-generator.conf",
        "zramd.service.d/50-zramd-generator.conf",
    ]
    template = str(installed.units / "zramd-setup@.service")
    assert os.readlink(gen.out / "swap.target.wants" / "zramd-setup@zram0.service") == template
    assert os.readlink(gen.out / "local-fs.target.wants" / "zramd-setup@zram1.service") == template

    swap = gen.dropin("zramd-setup@zram0.service")
    assert one(swap, "Unit", "Description") == "zramd: swap on zram0, priority 42, discard"
    assert words(swap, "Unit", "Before") == ["swap.target"]
    assert "Conflicts" not in swap["Unit"]  # swap outlives the unit-level shutdown
    assert one(swap, "Unit", "SourcePath") == str(tmp_path / "zramd.conf")

    fs = gen.dropin("zramd-setup@zram1.service")
    assert one(fs, "Unit", "Description") == f"zramd: ext4 on {tmp_path / 'scratch'} (zram1)"
    assert words(fs, "Unit", "Conflicts") == ["umount.target"]
    assert set(words(fs, "Unit", "Before")) == {"local-fs.target", "umount.target"}
    assert "local-fs-pre.target" in words(fs, "Unit", "After")
    assert words(fs, "Unit", "RequiresMountsFor") == [str(tmp_path / "scratch")]

    daemon = gen.dropin("zramd.service")
    assert one(daemon, "Unit", "Description") == DAEMON_DESCRIPTION  # every device it serves
    assert one(daemon, "Unit", "SourcePath") == str(tmp_path / "zramd.conf")
    # The one FUSE mount, /run/zramd/sys: PID 1 must leave it alone at shutdown.
    assert gen.dropin("run-zramd-sys.mount") == {"Unit": {"DefaultDependencies": ["no"]}}


def test_generator_priority_and_options_pass_through(installed: Install, tmp_path: Path) -> None:
    config = "[zram3]\nzram-size = 32\nswap-priority = -1\noptions =\n"
    gen = generate(installed, tmp_path, config)
    assert gen.result.returncode == 0, gen.result.stderr
    dropin = gen.dropin("zramd-setup@zram3.service")
    assert one(dropin, "Unit", "Description") == "zramd: swap on zram3, priority -1"


def test_generator_bad_config_makes_no_units_and_says_why(installed: Install, tmp_path: Path) -> None:
    gen = generate(installed, tmp_path, "[zram0]\nzram-size = 64\n\n[zram1]\nzram-size = banana\n")
    assert gen.result.returncode == 0
    assert not gen.out.exists()
    message = gen.result.stderr
    assert message.count("\n") == 1, message
    assert message.startswith(f"zramd-generator: {tmp_path / 'zramd.conf'}:5: key 'zram-size': ")
    assert message.rstrip().endswith("no zramd units generated")


def test_generator_skips_a_device_it_cannot_hook_up(installed: Install, tmp_path: Path) -> None:
    gen = generate(installed, tmp_path, "[zram0]\nzram-size = 64\n\n[zram1]\nfs-type = ext4\n")
    assert gen.result.returncode == 0
    assert "[zram1] fs-type ext4 needs a mount-point; no units for this device" in gen.result.stderr
    assert all("zram1" not in f for f in gen.files())
    assert "swap.target.wants/zramd-setup@zram0.service" in gen.files()
    assert one(gen.dropin("zramd.service"), "Unit", "Description").endswith(" disks zram0 (64M, lzo)")
    # No device left to hook up: nothing for the daemon either.
    shutil.rmtree(gen.out)
    gen = generate(installed, tmp_path, "[zram1]\nfs-type = ext4\n")
    assert gen.result.returncode == 0
    assert "[zram1] fs-type ext4 needs a mount-point" in gen.result.stderr
    assert not gen.out.exists()


def test_generator_without_config_or_in_the_initrd_does_nothing(installed: Install, tmp_path: Path) -> None:
    gen = generate(installed, tmp_path, None)
    assert (gen.result.returncode, gen.result.stderr, gen.out.exists()) == (0, "", False)
    env = {**os.environ, "ZRAMD_GENERATOR_CONFIG": str(tmp_path / "c"), "SYSTEMD_IN_INITRD": "1"}
    (tmp_path / "c").write_text(sample(tmp_path))
    result = subprocess.run([str(installed.generator), str(tmp_path / "o")], env=env, check=False)
    assert result.returncode == 0
    assert not (tmp_path / "o").exists()


def test_generator_usage(installed: Install, tmp_path: Path) -> None:
    gen = generate(installed, tmp_path, sample(tmp_path), "a", "b")
    assert gen.result.returncode == 2
    assert "usage: zramd-generator NORMAL-DIR [EARLY-DIR LATE-DIR]" in gen.result.stderr


def load_generator(install: Install) -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("zramd_generator", str(install.generator))
    spec = importlib.util.spec_from_loader("zramd_generator", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_generator_logs_to_kmsg_under_systemd(
    installed: Install, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load_generator(installed)
    (tmp_path / "bad.conf").write_text("[zram0]\nzram-size = 64\nfs-type =\n")
    kmsg = tmp_path / "kmsg"
    kmsg.touch()
    monkeypatch.setattr(module, "KMSG", str(kmsg))
    monkeypatch.setattr(module, "CONFIG", str(tmp_path / "bad.conf"))
    monkeypatch.setenv("SYSTEMD_SCOPE", "system")
    root = logging.getLogger()  # main() installs its own handler there; give pytest's back
    monkeypatch.setattr(root, "handlers", list(root.handlers))
    monkeypatch.setattr(root, "level", root.level)
    assert module.main(["zramd-generator", str(tmp_path / "out")]) == 0
    for handler in root.handlers:
        kmsg_file = getattr(handler, "kmsg", None)
        if kmsg_file is not None:
            kmsg_file.close()
    # LOG_DAEMON | LOG_ERR, the generator's name and pid, one line.
    assert re.fullmatch(
        r"<27>zramd-generator\[\d+\]: \S+bad.conf:3: key 'fs-type': .*; no zramd units generated\n",
        kmsg.read_text(),
    ), kmsg.read_text()


@pytest.mark.parametrize("path", [ROOT_IN_UNITS, "/var/a-b/.c d/ü", "/", "//x//y/", "/.hidden"])
def test_mount_unit_names_match_systemd_escape(installed: Install, path: str) -> None:
    if shutil.which("systemd-escape") is None:
        pytest.skip("systemd-escape is not installed")
    expected = subprocess.run(
        ["systemd-escape", "--path", "--suffix=mount", path], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert load_generator(installed).mount_unit_name(path) == expected


# ------------------------------------------------------------------------------ systemd-analyze


@pytest.fixture(scope="module")
def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    return tool


def verify(
    analyze: str, install: Install, out: Path, *units: str, debug: bool = False
) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze verify` with only our directories ahead of the distribution's units (not
    /etc or /run: the host's own configuration must not change the result). It works offline:
    no running systemd is needed."""
    system = [d for d in ("/usr/lib/systemd/system", "/lib/systemd/system") if os.path.isdir(d)]
    env = {
        **os.environ,
        "SYSTEMD_UNIT_PATH": ":".join([str(out), str(install.units), *system]),
        "SYSTEMD_LOG_LEVEL": "debug" if debug else "notice",
    }
    return subprocess.run(
        [analyze, "verify", "--man=no", *units],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


INSTANCES = ["zramd.service", "zramd-setup@zram0.service", "zramd-setup@zram1.service"]


def test_systemd_analyze_verify(analyze: str, installed: Install, tmp_path: Path) -> None:
    gen = generate(installed, tmp_path, sample(tmp_path))
    assert gen.result.returncode == 0
    # The units, and the early-boot transaction the generator puts them in: no warnings, no
    # ordering cycles (verify reports those on stderr but still exits 0).
    for units in (INSTANCES, ["swap.target", "local-fs.target", "sysinit.target"]):
        result = verify(analyze, installed, gen.out, *units)
        assert (result.returncode, result.stderr) == (0, ""), units


def test_systemd_analyze_verify_is_not_vacuous(analyze: str, installed: Install, tmp_path: Path) -> None:
    gen = generate(installed, tmp_path, sample(tmp_path))
    cycle = gen.out / "zramd.service.d" / "cycle.conf"
    cycle.write_text("[Unit]\nAfter=swap.target\n")  # the daemon after swap.target: a cycle
    result = verify(analyze, installed, gen.out, "swap.target")
    assert "Found ordering cycle" in result.stderr
    cycle.unlink()
    bad = tmp_path / "bad"
    bad.mkdir()
    text = (installed.units / "zramd.service").read_text().replace(str(installed.bin), "/nonexistent")
    (bad / "zramd.service").write_text(text)
    result = verify(analyze, installed, bad, "zramd.service")
    assert result.returncode != 0
    assert "/nonexistent/@zramd" in result.stderr


def dump(text: str) -> dict[str, list[tuple[str, str]]]:
    """The unit dumps `systemd-analyze verify` prints (on stdout) at debug level: unit -> (key, value)."""
    units: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for line in text.splitlines():
        header = re.fullmatch(r"\t-> Unit (\S+):", line)
        if header:
            current = units.setdefault(header.group(1), [])
        elif current is not None and (setting := re.fullmatch(r"\t\t(\w[\w ]*): (.*)", line)):
            current.append(
                (setting.group(1), re.sub(r" \((origin|destination)-[^)]*\)$", "", setting.group(2)))
            )
        elif not line.startswith("\t\t"):
            current = None
    return units


def test_effective_dependencies(analyze: str, installed: Install, tmp_path: Path) -> None:
    """What systemd itself makes of the units, drop-ins and defaults -- not just what the files say."""
    gen = generate(installed, tmp_path, sample(tmp_path))
    units = dump(verify(analyze, installed, gen.out, *INSTANCES, debug=True).stdout)
    if not units:
        pytest.skip("this systemd-analyze prints no unit dump at debug level")

    def values(unit: str, key: str) -> set[str]:
        return {v for k, v in units[unit] if k == key}

    daemon = "zramd.service"
    assert values(daemon, "Conflicts") == set()
    assert "shutdown.target" not in values(daemon, "Before")
    assert values(daemon, "Slice") == {"system.slice"}
    assert values(daemon, "DefaultDependencies") == {"no"}
    assert values(daemon, "CapabilityBoundingSet") == {"cap_ipc_lock cap_sys_admin cap_sys_resource"}
    assert values(daemon, "OOMScoreAdjust") == {"-1000"}
    assert values(daemon, "LimitMEMLOCK") == {str(2**64 - 1)}  # infinity
    for setting in ("PrivateTmp", "PrivateDevices", "ProtectSystem", "ProtectHome", "MountAPIVFS"):
        assert values(daemon, setting) == {"no"}, setting
    assert {"modprobe@fuse.service", "modprobe@loop.service"} <= values(daemon, "Wants")
    # The generator's description, naming both devices, replaces the unit's.
    assert values(daemon, "Description") == {DAEMON_DESCRIPTION}
    for device in ("zram0", "zram1"):
        setup = f"zramd-setup@{device}.service"
        assert values(setup, "BindsTo") == {daemon}
        assert daemon in values(setup, "After")
        assert values(setup, "Slice") == {"system.slice"}
    assert values("zramd-setup@zram0.service", "Conflicts") == set()
    assert "swap.target" in values("zramd-setup@zram0.service", "Before")
    assert values("zramd-setup@zram1.service", "Conflicts") == {"umount.target"}
    assert {"local-fs.target", "umount.target"} <= values("zramd-setup@zram1.service", "Before")


# ------------------------------------------------------------------------------ run as the units do


def command(unit: Unit, key: str, config: Path, root: Path, device: str = "") -> tuple[str, list[str]]:
    """The executable and argv of a unit's Exec line (for instance `device`). It reads `config`
    instead of /etc/zramd/zramd.conf and uses `root` instead of /run/zramd/sys -- the daemon's
    ROOT argument, and `--root ROOT` for `zramd up` / `zramd down` -- so the test cannot collide
    with the real devices."""
    tokens = [w.replace("%i", device) for w in shlex.split(one(unit, "Service", key))]
    tokens = [{CONFIG_IN_UNITS: str(config), ROOT_IN_UNITS: str(root)}.get(w, w) for w in tokens]
    executable = tokens[0].removeprefix("-")  # "-" prefix: a failure is ignored
    if executable.startswith("@"):  # "@" prefix: the next word is argv[0]
        return executable[1:], tokens[1:]
    argv = [executable, *tokens[1:]]
    if argv[1:2] in (["up"], ["down"]):
        assert "--root" not in argv
        argv += ["--root", str(root)]
    return executable, argv


def swap_priorities() -> dict[str, str]:
    """/proc/swaps: each active swap area's priority."""
    return {line.split()[0]: line.split()[-1] for line in Path("/proc/swaps").read_text().splitlines()[1:]}


def bounded(unit: Unit) -> tuple[int, Callable[[], None]]:
    """The unit's CapabilityBoundingSet= as a mask, and a preexec_fn that applies it (and
    NoNewPrivileges=, if set)."""
    keep = {CAPABILITIES[name] for name in words(unit, "Service", "CapabilityBoundingSet")}
    no_new_privileges = unit["Service"].get("NoNewPrivileges") == ["yes"]
    libc = ctypes.CDLL(None, use_errno=True)

    def apply() -> None:
        for cap in range(64):
            if cap not in keep:
                libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP; EINVAL past the last cap
        if no_new_privileges:
            libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS

    return sum(1 << cap for cap in keep), apply


def capabilities(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1], 16)
    raise AssertionError(field)


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"zramd-t8-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(60)
        yield sock, "@" + name


def test_python_finds_its_venv_only_through_the_at_zramd_link(installed: Install) -> None:
    code = "import sys, zramd; print(sys.argv[0] if sys.argv else '', sys.prefix)"
    link = str(installed.bin / "@zramd")
    found = subprocess.run(
        ["@zramd", "-c", code], executable=link, env={"PATH": f"{installed.bin}:/usr/bin:/bin"}, cwd="/",
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert found.stdout.split() == ["-c", str(installed.bin.parent)]
    lost = subprocess.run(
        ["@zramd", "-c", code],
        executable=link,
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )  # without the venv's bin/ in PATH, argv[0] "@zramd" leads Python nowhere
    assert lost.returncode == 1
    assert "No module named 'zramd'" in lost.stderr


def test_daemon_and_setup_run_as_their_units_do(
    installed: Install, tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    """zramd.service's commands, then zramd-setup@zram0 (swap) and zramd-setup@zram1 (ext4)
    started and stopped against it, then the daemon stopped as `systemctl stop` does."""
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    for tool in ("mkswap", "swapon", "mkfs.ext4"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    config = tmp_path / "zramd.conf"
    config.write_text(sample(tmp_path))
    scratch = tmp_path / "scratch"
    root = tmp_path / "sys"  # stands for /run/zramd/sys
    daemon_unit, setup_unit = installed.unit("zramd.service"), installed.unit("zramd-setup@.service")
    daemon_mask, daemon_drop = bounded(daemon_unit)
    _, setup_drop = bounded(setup_unit)
    sock, address = notify_socket
    key, value = one(daemon_unit, "Service", "Environment").split("=", 1)
    env = {key: value, "NOTIFY_SOCKET": address}

    def setup(key: str, device: str) -> None:
        exe, argv = command(setup_unit, key, config, root, device)
        done = subprocess.run(
            argv, executable=exe, preexec_fn=setup_drop, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"zramd-setup@{device} {key}: {done.stderr}"

    proc: subprocess.Popen[bytes] | None = None
    log = tmp_path / "daemon.log"  # its stderr, which systemd would send to the journal
    try:
        exe, argv = command(daemon_unit, "ExecStartPre", config, root)
        subprocess.run(argv, executable=exe, env=env, preexec_fn=daemon_drop, check=True, timeout=60)
        exe, argv = command(daemon_unit, "ExecStart", config, root)
        assert argv[-3:] == [str(root), "--devices", "0"]
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                argv, executable=exe, env=env, preexec_fn=daemon_drop, cwd="/", stderr=stderr
            )
        message = sock.recv(4096).decode()  # Type=notify
        assert "READY=1" in message.split("\n"), message
        assert f"MAINPID={proc.pid}" in message
        assert Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"@zramd\0-m\0zramd\0run\0")
        assert capabilities(proc.pid, "CapBnd") & ~daemon_mask == 0
        assert "NoNewPrivs:\t1" in Path(f"/proc/{proc.pid}/status").read_text()
        report = (root / "zram-control" / "daemon").read_text()
        assert "mlockall: MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT" in report  # CAP_IPC_LOCK
        assert "devices: none" in report  # the setup units create them

        for device in ("zram0", "zram1"):
            setup("ExecStart", device)
        blocks = {name: (root / name / "block_device").read_text().strip() for name in ("zram0", "zram1")}
        # The daemon's own loop devices, linked under /dev/zramd/<root's run name>/.
        assert sorted(loop.path for loop in bound_under(str(root))) == sorted(blocks.values())
        for device, block in blocks.items():
            assert os.path.realpath(block_link_dir(str(root)) / device) == block
        assert (root / "zram0" / "comp_algorithm").read_text().count("[lz4]") == 1
        assert swap_priorities().get(blocks["zram0"]) == "42", swap_priorities()  # as configured
        entry = mount_entry(str(scratch))
        assert entry is not None and (entry.fstype, entry.source) == ("ext4", blocks["zram1"])

        # While its block devices are in use the daemon refuses SIGTERM (TimeoutStopSec=infinity).
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while "WARNING: SIGTERM refused: " not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert proc.poll() is None

        # `systemctl stop zramd`: the setup units first (they are After= it), then the daemon.
        for device in ("zram1", "zram0"):
            setup("ExecStop", device)
            assert not (root / device).exists()  # reset and hot_remove'd
        assert proc.poll() is None  # `zramd down --device` leaves the daemon to its unit
        assert mount_entry(str(scratch)) is None
        assert not set(blocks.values()) & set(swap_priorities())
        proc.send_signal(signal.SIGTERM)  # what systemctl stop sends
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert mount_entry(str(root)) is None
        assert bound_under(str(root)) == []
        assert not block_link_dir(str(root)).exists()
    finally:
        if proc is not None:  # reap it as soon as it exits: force_cleanup waits for its pid to go
            threading.Thread(target=proc.wait, daemon=True).start()
        force_cleanup(root)  # swap, mounts and loop devices under root, the mount, its daemon
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if mount_entry(str(scratch)) is not None:
            subprocess.run(["umount", "-l", str(scratch)], capture_output=True, check=False)
        logfile_for(str(root)).unlink(missing_ok=True)  # in case `zramd up` had to start a daemon
