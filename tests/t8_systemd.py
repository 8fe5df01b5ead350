"""Tier 8: the systemd integration in systemd/ -- the installer, the generator, the unit files'
ordering and capabilities, `systemd-analyze verify` on the instantiated units, and the daemon run
exactly as zramd@.service runs it (argv[0] "@zramd", its capability bounding set, sd_notify).

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.mount_util import force_cleanup, fuse_unavailable
from zramd.host.mounts import loop_devices_for, mount_entry

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = REPO / "systemd"
CONFIG_IN_UNITS = "/etc/zramd/zramd.conf"

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
    assert sorted(p.name for p in installed.units.iterdir()) == ["zramd-setup@.service", "zramd@.service"]
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


# ------------------------------------------------------------------------------ the unit files


def test_daemon_unit(installed: Install) -> None:
    unit = installed.unit("zramd@.service")
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
    assert one(unit, "Service", "Slice") == "system.slice"  # not system-zramd.slice
    # No private mount namespace: the FUSE mount must be everyone's.
    assert not NAMESPACE_SETTINGS & set(service), NAMESPACE_SETTINGS & set(service)
    # argv[0] "@zramd": spared by systemd-shutdown's killing spree.
    command = shlex.split(one(unit, "Service", "ExecStart"))
    assert command[0] == f"@{installed.bin / '@zramd'}"
    assert command[1:] == ["@zramd", "-m", "zramd", "run", "--config", CONFIG_IN_UNITS, "--device", "%i"]
    assert one(unit, "Service", "Environment").startswith(f"PATH={installed.bin}:")


def test_setup_unit(installed: Install) -> None:
    unit = installed.unit("zramd-setup@.service")
    assert one(unit, "Service", "Type") == "oneshot"
    assert one(unit, "Service", "RemainAfterExit") == "yes"
    assert words(unit, "Unit", "BindsTo") == ["zramd@%i.service"]
    assert "zramd@%i.service" in words(unit, "Unit", "After")  # so it stops before the daemon
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
        "run-zramd-zram0.mount.d/50-zramd-generator.conf",
        "run-zramd-zram1.mount.d/50-zramd-generator.conf",
        "swap.target.wants/zramd-setup@zram0.service",
        "zramd-setup@zram0.service.d/50-zramd-generator.conf",
        "zramd-setup@zram1.service.d/50-zramd-generator.conf",
        "zramd@zram0.service.d/50-zramd-generator.conf",
        "zramd@zram1.service.d/50-zramd-generator.conf",
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

    assert one(gen.dropin("zramd@zram0.service"), "Unit", "Description") == (
        "zramd compressed RAM disk zram0 (64M, lz4)"
    )
    for name in ("zram0", "zram1"):
        assert gen.dropin(f"run-zramd-{name}.mount") == {"Unit": {"DefaultDependencies": ["no"]}}


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


@pytest.mark.parametrize("path", ["/run/zramd/zram0", "/var/a-b/.c d/ü", "/", "//x//y/", "/.hidden"])
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


INSTANCES = [
    "zramd@zram0.service",
    "zramd-setup@zram0.service",
    "zramd@zram1.service",
    "zramd-setup@zram1.service",
]


def test_systemd_analyze_verify(analyze: str, installed: Install, tmp_path: Path) -> None:
    gen = generate(installed, tmp_path, sample(tmp_path))
    assert gen.result.returncode == 0
    # The instances, and the early-boot transaction the generator puts them in: no warnings, no
    # ordering cycles (verify reports those on stderr but still exits 0).
    for units in (INSTANCES, ["swap.target", "local-fs.target", "sysinit.target"]):
        result = verify(analyze, installed, gen.out, *units)
        assert (result.returncode, result.stderr) == (0, ""), units


def test_systemd_analyze_verify_is_not_vacuous(analyze: str, installed: Install, tmp_path: Path) -> None:
    gen = generate(installed, tmp_path, sample(tmp_path))
    cycle = gen.out / "zramd@zram0.service.d" / "cycle.conf"
    cycle.write_text("[Unit]\nAfter=swap.target\n")  # the daemon after swap.target: a cycle
    result = verify(analyze, installed, gen.out, "swap.target")
    assert "Found ordering cycle" in result.stderr
    cycle.unlink()
    bad = tmp_path / "bad"
    bad.mkdir()
    text = (installed.units / "zramd@.service").read_text().replace(str(installed.bin), "/nonexistent")
    (bad / "zramd@.service").write_text(text)
    result = verify(analyze, installed, bad, "zramd@zram0.service")
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

    for device in ("zram0", "zram1"):
        daemon = f"zramd@{device}.service"
        assert values(daemon, "Conflicts") == set()
        assert "shutdown.target" not in values(daemon, "Before")
        assert values(daemon, "Slice") == {"system.slice"}
        assert values(daemon, "DefaultDependencies") == {"no"}
        assert values(daemon, "CapabilityBoundingSet") == {"cap_ipc_lock cap_sys_admin cap_sys_resource"}
        assert values(daemon, "OOMScoreAdjust") == {"-1000"}
        assert values(daemon, "LimitMEMLOCK") == {str(2**64 - 1)}  # infinity
        for setting in ("PrivateTmp", "PrivateDevices", "ProtectSystem", "ProtectHome", "MountAPIVFS"):
            assert values(daemon, setting) == {"no"}, setting
        setup = f"zramd-setup@{device}.service"
        assert values(setup, "BindsTo") == {daemon}
        assert daemon in values(setup, "After")
        assert values(setup, "Slice") == {"system.slice"}
    assert values("zramd-setup@zram0.service", "Conflicts") == set()
    assert "swap.target" in values("zramd-setup@zram0.service", "Before")
    assert values("zramd-setup@zram1.service", "Conflicts") == {"umount.target"}
    assert {"local-fs.target", "umount.target"} <= values("zramd-setup@zram1.service", "Before")


# ------------------------------------------------------------------------------ run as the units do


def loops_of(mountpoint: Path) -> list[str]:
    return loop_devices_for(str(mountpoint / "disk"))


def argv_of(unit: Unit, key: str, device: str, config: Path, mountpoint: Path) -> tuple[str, list[str]]:
    """The executable and argv of a unit's Exec line for `device`, reading `config` and using
    `mountpoint` instead of /run/zramd/DEVICE (so the test cannot collide with a real device)."""
    tokens = [w.replace("%i", device) for w in shlex.split(one(unit, "Service", key))]
    tokens = [str(config) if w == CONFIG_IN_UNITS else w for w in tokens]
    if tokens[0].startswith("@"):  # "@" prefix: the next word is argv[0]
        return tokens[0][1:], [*tokens[1:], str(mountpoint)]
    return tokens[0], [*tokens, str(mountpoint)]


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
    reason = fuse_unavailable()
    if reason:
        pytest.skip(reason)
    for tool in ("losetup", "mkswap", "swapon", "mkfs.ext4"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    config = tmp_path / "zramd.conf"
    config.write_text(sample(tmp_path))
    daemon_unit, setup_unit = installed.unit("zramd@.service"), installed.unit("zramd-setup@.service")
    daemon_mask, daemon_drop = bounded(daemon_unit)
    _, setup_drop = bounded(setup_unit)
    sock, address = notify_socket
    key, value = one(daemon_unit, "Service", "Environment").split("=", 1)
    env = {key: value, "NOTIFY_SOCKET": address}
    daemons: dict[str, subprocess.Popen[bytes]] = {}
    mountpoints = {device: tmp_path / device for device in ("zram0", "zram1")}
    try:
        for device, mountpoint in mountpoints.items():
            mountpoint.mkdir()
            exe, argv = argv_of(daemon_unit, "ExecStart", device, config, mountpoint)
            daemons[device] = proc = subprocess.Popen(
                argv, executable=exe, env=env, preexec_fn=daemon_drop, cwd="/"
            )
            message = sock.recv(4096).decode()  # Type=notify
            assert "READY=1" in message.split("\n"), message
            assert f"MAINPID={proc.pid}" in message
            assert Path(f"/proc/{proc.pid}/cmdline").read_bytes().startswith(b"@zramd\0-m\0zramd\0run\0")
            assert capabilities(proc.pid, "CapBnd") & ~daemon_mask == 0
            assert "NoNewPrivs:\t1" in Path(f"/proc/{proc.pid}/status").read_text()
            report = (mountpoint / "sys" / "daemon").read_text()
            assert "mlockall: MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT" in report  # CAP_IPC_LOCK
            exe, argv = argv_of(setup_unit, "ExecStart", device, config, mountpoint)
            up = subprocess.run(
                argv, executable=exe, preexec_fn=setup_drop, capture_output=True, text=True, check=False
            )
            assert up.returncode == 0, up.stderr

        swaps = Path("/proc/swaps").read_text().splitlines()[1:]
        loops = [line.split() for line in swaps if line.split()[0] in loops_of(mountpoints["zram0"])]
        assert len(loops) == 1 and loops[0][-1] == "42", swaps  # the configured priority
        scratch = mount_entry(str(tmp_path / "scratch"))
        assert scratch is not None and scratch.fstype == "ext4"

        for device, mountpoint in mountpoints.items():
            exe, argv = argv_of(setup_unit, "ExecStop", device, config, mountpoint)
            down = subprocess.run(
                argv, executable=exe, preexec_fn=setup_drop, capture_output=True, text=True, check=False
            )
            assert down.returncode == 0, down.stderr
            daemons[device].send_signal(signal.SIGTERM)  # what systemctl stop sends
            assert daemons[device].wait(timeout=60) == 0
            assert mount_entry(str(mountpoint)) is None
        assert mount_entry(str(tmp_path / "scratch")) is None
        assert not loops_of(mountpoints["zram0"])
    finally:
        for device, proc in daemons.items():
            if proc.poll() is None:
                force_cleanup(mountpoints[device])
                proc.kill()
                proc.wait()
