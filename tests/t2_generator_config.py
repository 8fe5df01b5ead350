"""Tier 2: the zram-generator.conf parser -- upstream's own examples and fixtures, every key and
default, the fasteval-style expression language, and errors that name the file, line and key.

Upstream texts below are pasted verbatim from systemd/zram-generator; each names its source.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pytest

from zramd.admin.config_file import (
    ConfigError,
    DeviceSection,
    ExpressionError,
    evaluate_expression,
    load_config,
    parse_config,
)
from zramd.core import compress
from zramd.core.errors import UserError

MIB = 1 << 20
PATH = "zramd.conf"


def devices(text: str, ram_mib: int = 8192) -> dict[str, DeviceSection]:
    return parse_config(text, PATH, ram_mib * MIB)


def config_error(text: str, ram_mib: int = 8192) -> str:
    with pytest.raises(ConfigError) as info:
        devices(text, ram_mib)
    message = str(info.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------- upstream examples

# systemd/zram-generator, zram-generator.conf.example at commit 00eaeebfb0d7 (the 0.x example).
EXAMPLE_0X = """\
[zram0]
# This section describes the settings for /dev/zram0.
#
# The maximum amount of memory (in MiB). If the machine has more RAM
# than this, zram device will not be created.
#
# "host-memory-limit = none" may be used to disable this limit. This
# is also the default.
#
# To disable a device (when some configuration for it already exits),
# set "host-memory-limit = 0".
host-memory-limit = 9048

# The fraction of memory to use as ZRAM. For example, if the machine
# has 1 GiB, and zram-fraction=0.25, then the zram device will have
# 256 MiB. Values in the range 0.10–0.40 are recommended.
#
# The default is 0.5.
zram-fraction = 0.10

# The maximum size of the zram device (in MiB).
#
# If host-memory times zram-fraction is greater than this,
# the size will be capped to this amount;
# for example, on a machine with 2 GiB of RAM and with zram-fraction=0.5,
# the device would still be 512 MiB in size due to the limit below.
#
# The default is 4096.
max-zram-size = 512

# The compression algorithm to use for the zram device,
# or leave unspecified to keep the kernel default.
compression-algorithm = lzo-rle
"""

# systemd/zram-generator, zram-generator.conf.example as published on docs.rs
# (docs.rs/crate/zram-generator/latest/source/zram-generator.conf.example). The stored copy had
# lost its blank lines and stops after the first line of [zram1]; every line here is verbatim.
EXAMPLE_1X = """\
# This file is part of the zram-generator project
# https://github.com/systemd/zram-generator
[zram0]
# This section describes the settings for /dev/zram0.
#
# The maximum amount of memory (in MiB). If the machine has more RAM
# than this, zram device will not be created.
#
# "host-memory-limit = none" may be used to disable this limit. This
# is also the default.
host-memory-limit = 9048
# The size of the zram device, as a function of MemTotal, both in MB.
# For example, if the machine has 1 GiB, and zram-size=ram/4,
# then the zram device will have 256 MiB.
# Fractions in the range 0.1–0.5 are recommended.
#
# The default is "min(ram / 2, 4096)".
zram-size = min(ram / 10, 2048)
# The compression algorithm to use for the zram device,
# or leave unspecified to keep the kernel default.
compression-algorithm = lzo-rle
# By default, file systems and swap areas are trimmed on-the-go
# by setting "discard".
# Setting this to the empty string clears the option.
options =
# Write incompressible pages to this device,
# as there's no gain from keeping them in RAM
writeback-device = /dev/zvol/tarta-zoot/swap-writeback
# The following options are deprecated, and override zram-size.
# These values would be equivalent to the zram-size setting above.
#zram-fraction = 0.10
#max-zram-size = 2048
[zram1]
# This section describes the settings for /dev/zram1.
#
# host-memory-limit is not specified, so this device will always be created.
# Size the device to a tenth of RAM.
zram-size = ram / 10
"""

# systemd/zram-generator, zram-generator.conf.example on main: its opening (the `set!` line is
# the documented way to run a program; zramd refuses it).
EXAMPLE_MAIN_HEAD = """\
# This file is part of the zram-generator project
# https://github.com/systemd/zram-generator

# At the top level, a set!variable = program
# directive executes /bin/sh -c program,
# parses the output as an expression, and remembers it in variable,
# usable in later set! and zram-size/zram-resident-limit.
set!maxhotplug = xenstore-read /local/domain/$(xenstore-read domid)/memory/hotplug-max
"""

# systemd/zram-generator README.md (https://github.com/systemd/zram-generator).
README_SWAP = """\
# /etc/systemd/zram-generator.conf
[zram0]
zram-size = ram / 2
"""
README_MOUNT = """\
# /etc/systemd/zram-generator.conf
[zram1]
mount-point = /var/compressed
"""

# systemd/zram-generator tests/*/etc/systemd/zram-generator.conf fixtures.
FIXTURE_03_TOO_MUCH_MEMORY = "[zram0]\nhost-memory-limit=7824\n"  # commit b0d32e5553da
FIXTURE_07_MOUNT_POINT = """\
[zram11]
mount-point = /var/compressed
fs-type = ext4

[zram12]
mount-point = /var/folded
fs-type = ext4
options = discard,casefold

# systemd.unit(5) example
[zram13]
mount-point = /foo//bar/baz/
fs-type = ext4

[zram14]
mount-point = /.żupan-ci3pły
fs-type = ext4

[zram15]
mount-point = ///
fs-type = ext4
"""  # commit 2f2d5fbf0b69
FIXTURE_09_MOUNT_OPTIONS = """\
[zram11]
mount-point = /var/compressed
fs-type = ext4
mount-options = discard
"""  # commit c7c5cf1c5412
FIXTURE_09_ZRAM_SIZE = """\
[zram0]
compression-algorithm = zstd(dictionary=/etc/gaming,level=9) (recompargs)
host-memory-limit = 2050
zram-size = min(0.75 * ram, 6000)
"""  # commit 0fb828f6bb19
FIXTURE_11_OBSOLETE = """\
[zram0]
zram-fraction = 0.10
max-zram-size = 2048
memory-limit = 100000

[zram1]
host-memory-limit = 2
[zram1]
zram-fraction = 0.10
max-zram-size = none
memory-limit = none

[zram2]
zram-fraction = 0.10
max-zram-size = 2048
memory-limit = 1
"""  # commit 0de7a656d337


def test_example_0x_names_the_unsupported_lzo_rle() -> None:
    message = config_error(EXAMPLE_0X)
    assert message.startswith(
        f"{PATH}:33: key 'compression-algorithm': unsupported compression algorithm 'lzo-rle'"
    )
    assert "use 'lzo'" in message


def test_example_0x_with_lzo() -> None:
    # zram-fraction 0.10 of 4096 MiB is 409 MiB, under max-zram-size 512.
    result = devices(EXAMPLE_0X.replace("lzo-rle", "lzo"), ram_mib=4096)
    assert result == {
        "zram0": DeviceSection("zram0", 409 * MIB, 0, "lzo", 100, "swap", None, "discard", 1),
    }
    # The man page's worked example: 2 GiB with fraction 0.5 is still capped at 512 MiB.
    text = EXAMPLE_0X.replace("lzo-rle", "lzo").replace("zram-fraction = 0.10", "zram-fraction = 0.5")
    assert devices(text, ram_mib=2048)["zram0"].zram_size == 512 * MIB
    # Above host-memory-limit = 9048 the device is not created.
    assert devices(EXAMPLE_0X.replace("lzo-rle", "lzo"), ram_mib=9049) == {}
    assert "zram0" in devices(EXAMPLE_0X.replace("lzo-rle", "lzo"), ram_mib=9048)


def test_example_1x(caplog: pytest.LogCaptureFixture) -> None:
    assert "lzo-rle" in config_error(EXAMPLE_1X)
    caplog.set_level(logging.WARNING)
    result = devices(EXAMPLE_1X.replace("lzo-rle", "lzo"), ram_mib=8192)
    assert result == {
        # min(8192 / 10, 2048) = 819.2 MiB, truncated to bytes as zram-generator does
        "zram0": DeviceSection(
            "zram0", int(819.2 * MIB), 0, "lzo", 100, "swap", None, "", 3,
            writeback_device="/dev/zvol/tarta-zoot/swap-writeback",
        ),
        "zram1": DeviceSection("zram1", int(819.2 * MIB), 0, "lzo", 100, "swap", None, "discard", 33),
    }  # fmt: skip
    assert "writeback-device" not in caplog.text  # applied as backing_dev, no longer ignored


def test_writeback_policy_key() -> None:
    text = "[zram0]\nwriteback-device = /var/tmp/back.img\nwriteback-policy = interval=60 idle_age=600\n"
    section = devices(text, ram_mib=8192)["zram0"]
    assert section.writeback_device == "/var/tmp/back.img"
    assert section.writeback_policy == "interval=60 idle_age=600"
    assert "writeback-policy" in config_error("[zram0]\nwriteback-policy = interval=-1\n")
    assert "unknown key" in config_error("[zram0]\nwriteback-policy = every=5\n")
    # 16 GiB is above host-memory-limit = 9048: only zram1 ("will always be created").
    assert list(devices(EXAMPLE_1X.replace("lzo-rle", "lzo"), ram_mib=16384)) == ["zram1"]


def test_example_main_refuses_set() -> None:
    message = config_error(EXAMPLE_MAIN_HEAD + "[zram0]\nzram-size = maxhotplug * 3/4\n")
    assert message.startswith(f"{PATH}:8: key 'set!maxhotplug': 'set!' directives are not supported")


def test_readme_examples() -> None:
    assert devices(README_SWAP, 6000) == {
        "zram0": DeviceSection(
            "zram0", 3000 * MIB, 0, compress.DEFAULT_ALGORITHM, 100, "swap", None, "discard", 2
        )
    }
    # "This will set up a /dev/zram1 with ext2 and generate a mount unit for /var/compressed."
    zram1 = devices(README_MOUNT, 6000)["zram1"]
    assert (zram1.fs_type, zram1.mount_point, zram1.zram_size) == ("ext2", "/var/compressed", 3000 * MIB)


@pytest.mark.parametrize(
    ("ram_gib", "size_gib"),
    [(1, 0.5), (4, 2), (8, 4), (16, 4), (64, 4)],
)
def test_man_page_default_graph(ram_gib: int, size_gib: float) -> None:
    # man/zram-generator.conf.md, EXAMPLES: "The default configuration will yield the following"
    assert devices("[zram0]\n", ram_gib * 1024)["zram0"].zram_size == int(size_gib * 1024) * MIB


# man/zram-generator.conf.md (commit 6b60ef89d6e7), EXAMPLES: "A piecewise-linear size 1:1 for the
# first 4G, then 1:2 above, up to a max of 32G:"
PIECEWISE = "zram-size = min(min(ram, 4096) + max(ram - 4096, 0) / 2, 32 * 1024)"


@pytest.mark.parametrize(
    ("ram_gib", "size_gib"),
    [(1, 1), (4, 4), (8, 6), (12, 8), (56, 30), (60, 32), (64, 32)],
)
def test_man_page_piecewise_graph(ram_gib: int, size_gib: int) -> None:
    assert devices(f"[zram0]\n{PIECEWISE}\n", ram_gib * 1024)["zram0"].zram_size == size_gib << 30


def test_man_page_0x_zram_size_examples() -> None:
    # man/zram-generator.conf.md of zram-generator 0.3: "# this is the same as the default config"
    for ram in (512, 4096, 10000):
        assert evaluate_expression("min(0.5 * ram, 4096)", ram) == evaluate_expression(
            "min(ram / 2, 4096)", ram
        )
    # "# fraction 1.0 for first 4GB, and then fraction 0.5 above that"
    expr = "1.0 * min(ram, 4096) + 0.5 * max(ram - 4096, 0)"
    assert evaluate_expression(expr, 2048) == 2048
    assert evaluate_expression(expr, 8192) == 6144


def test_fixture_03_too_much_memory() -> None:
    assert devices(FIXTURE_03_TOO_MUCH_MEMORY, ram_mib=7825) == {}
    assert list(devices(FIXTURE_03_TOO_MUCH_MEMORY, ram_mib=7824)) == ["zram0"]


def test_fixture_07_mount_point() -> None:
    result = devices(FIXTURE_07_MOUNT_POINT)
    assert {name: (d.mount_point, d.fs_type, d.options) for name, d in result.items()} == {
        "zram11": ("/var/compressed", "ext4", "discard"),
        "zram12": ("/var/folded", "ext4", "discard,casefold"),
        "zram13": ("/foo/bar/baz", "ext4", "discard"),
        "zram14": ("/.żupan-ci3pły", "ext4", "discard"),
        "zram15": ("/", "ext4", "discard"),
    }


def test_fixture_09_mount_options_is_an_unknown_key() -> None:
    # zram-generator warns "unknown key mount-options, ignoring"; zramd refuses.
    assert config_error(FIXTURE_09_MOUNT_OPTIONS).startswith(f"{PATH}:4: key 'mount-options': unknown key")


def test_fixture_09_zram_size(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    zram0 = devices(FIXTURE_09_ZRAM_SIZE, ram_mib=2048)["zram0"]
    assert (zram0.compression_algorithm, zram0.zram_size) == ("zstd", 1536 * MIB)
    assert "ignores the parameters of zstd (dictionary=/etc/gaming level=9)" in caplog.text
    text = FIXTURE_09_ZRAM_SIZE.replace("zstd(", "lz4(")
    assert "the global recompression parameters" in caplog.text
    assert devices(text, ram_mib=2051) == {}


def test_fixture_11_obsolete() -> None:
    result = devices(FIXTURE_11_OBSOLETE, ram_mib=4096)
    # zram2: memory-limit = 1 is below the RAM.  zram1: the later "memory-limit = none" wins.
    assert list(result) == ["zram0", "zram1"]
    assert result["zram0"].zram_size == 409 * MIB  # int(0.1 * 4096), under max-zram-size 2048
    assert result["zram1"].zram_size == 409 * MIB
    assert result["zram1"].line == 6  # the first [zram1] header
    assert devices(FIXTURE_11_OBSOLETE, ram_mib=40960)["zram0"].zram_size == 2048 * MIB


# ------------------------------------------------ upstream's unit tests of zram-size (config.rs)


@pytest.mark.parametrize(
    ("expr", "ram", "mib"),
    [
        ("0.5 * ram", 100, 50),
        ("500", 5000, 500),
        ("500k", 5000, 500 * 1000),  # SI suffixes multiply the number of MiB
        ("32G", 5000, 32 * 1_000_000_000),
        (None, 100, 50),
        (None, 10000, 4096),
        ("min(ram / 2, 4096)", 100, 50),
        ("min(ram / 2, 4096)", 10000, 4096),
        ("min(0.5 * ram, 4000)", 3000, 1500),
    ],
)
def test_config_rs_size_cases(expr: str | None, ram: int, mib: int) -> None:
    text = "[zram0]\n" + ("" if expr is None else f"zram-size = {expr}\n")
    assert devices(text, ram)["zram0"].zram_size == mib * MIB


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("array(1,2)", "unknown function 'array'"),
        ("(ram-100)/0", "division by zero"),
        ("(ram-99)/0", "division by zero"),  # upstream: +inf, the largest u64; zramd: an error
    ],
)
def test_config_rs_size_errors(expr: str, problem: str) -> None:
    message = config_error(f"[zram0]\nzram-size = {expr}\n", 100)
    assert message.startswith(f"{PATH}:2: key 'zram-size': ")
    assert problem in message


# -------------------------------------------------------------------------- every key


def test_defaults() -> None:
    assert devices("[zram0]\n", 2048) == {
        "zram0": DeviceSection(
            name="zram0",
            zram_size=1024 * MIB,
            resident_limit=0,
            compression_algorithm=compress.DEFAULT_ALGORITHM,
            swap_priority=100,
            fs_type="swap",
            mount_point=None,
            options="discard",
            line=1,
        )
    }


def test_every_key() -> None:
    text = """\
[zram3]
host-memory-limit = 65536
zram-size = ram / 4
zram-resident-limit = ram / 8
compression-algorithm = lz4
swap-priority = -1
mount-point = /var/tmp/./z/
fs-type = ext4
options = discard,noatime
"""
    assert devices(text, 8000) == {
        "zram3": DeviceSection(
            "zram3", 2000 * MIB, 1000 * MIB, "lz4", -1, "ext4", "/var/tmp/z", "discard,noatime", 1
        )
    }


def test_sizes_truncate_to_bytes() -> None:
    zram0 = devices("[zram0]\nzram-size = ram / 3\nzram-resident-limit = 0.3\n", 1000)["zram0"]
    assert zram0.zram_size == int(1000 / 3 * MIB)
    assert zram0.resident_limit == int(0.3 * MIB)


def test_zero_size_means_no_device() -> None:
    assert devices("[zram0]\nzram-size = 0\n[zram1]\nzram-size = ram - ram\n") == {}
    assert devices("[zram0]\nzram-size = 0.0000001\n") == {}  # less than a byte


def test_negative_size_is_an_error() -> None:
    message = config_error("[zram0]\nzram-size = ram - 10000\n", 8192)
    assert message == (
        f"{PATH}:2: key 'zram-size': 'ram - 10000' is -1808 MiB with ram = 8192; it must not be negative"
    )


def test_host_memory_limit() -> None:
    assert devices("[zram0]\nhost-memory-limit = 8191\n", 8192) == {}
    assert "zram0" in devices("[zram0]\nhost-memory-limit = 8192\n", 8192)
    assert "zram0" in devices("[zram0]\nhost-memory-limit = none\n", 1 << 20)
    assert devices("[zram0]\nhost-memory-limit = 0\n", 1) == {}  # the example's way to disable
    assert devices("[zram0]\nmemory-limit = 4\nhost-memory-limit = none\n", 8192) != {}
    assert devices("[zram0]\nhost-memory-limit = none\nmemory-limit = 4\n", 8192) == {}
    message = config_error("[zram0]\nhost-memory-limit = 2G\n")
    assert (
        message
        == f"{PATH}:2: key 'host-memory-limit': expected a whole number of megabytes or 'none', got '2G'"
    )


def test_skipped_device_is_still_checked() -> None:
    message = config_error("[zram0]\nhost-memory-limit = 1\nzram-size = ram +\n")
    assert message.startswith(f"{PATH}:3: key 'zram-size': invalid expression")


def test_ram_is_whole_mib() -> None:
    # MemTotal 4095.9 MiB: ram = 4095, as zram-generator's (kB / 1024) as u64
    zram0 = parse_config("[zram0]\nzram-size = ram\n", PATH, 4096 * MIB - 100 * 1024)["zram0"]
    assert zram0.zram_size == 4095 * MIB


def test_obsolete_keys() -> None:
    # zram-fraction alone: no cap.  max-zram-size alone: fraction 0.5.  Both override zram-size.
    assert devices("[zram0]\nzram-fraction = 0.75\n", 10000)["zram0"].zram_size == 7500 * MIB
    assert devices("[zram0]\nmax-zram-size = 1000\n", 10000)["zram0"].zram_size == 1000 * MIB
    assert devices("[zram0]\nmax-zram-size = none\n", 10000)["zram0"].zram_size == 5000 * MIB
    text = "[zram0]\nzram-size = 1\nzram-fraction = 0.25\n"
    assert devices(text, 10000)["zram0"].zram_size == 2500 * MIB
    assert config_error("[zram0]\nzram-fraction = -0.5\n").startswith(f"{PATH}:2: key 'zram-fraction': ")
    assert config_error("[zram0]\nmax-zram-size = lots\n").startswith(f"{PATH}:2: key 'max-zram-size': ")


@pytest.mark.parametrize(
    ("value", "algorithm"),
    [
        ("", compress.DEFAULT_ALGORITHM),
        ("lzo", "lzo"),
        ("lz4", "lz4"),
        ("lz4(level=9)", "lz4"),
        ("lz4 zstd(level=3) (type=idle)", "lz4"),
        ("(type=idle)", compress.DEFAULT_ALGORITHM),
    ],
)
def test_compression_algorithm(value: str, algorithm: str) -> None:
    assert devices(f"[zram0]\ncompression-algorithm = {value}\n")["zram0"].compression_algorithm == algorithm


def test_compression_algorithm_ignored_parts_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    devices("[zram0]\ncompression-algorithm = lzo zstd(level=3) (type=idle)\n")
    assert caplog.messages == [
        f"{PATH}:2: key 'compression-algorithm': zramd ignores recompression with zstd; "
        "the global recompression parameters"
    ]


def test_unsupported_algorithm() -> None:
    # the brief's example: lzo-rle first, recompression with zstd
    message = config_error("[zram0]\ncompression-algorithm = lzo-rle zstd(level=3) (type=idle)\n")
    assert message.startswith(
        f"{PATH}:2: key 'compression-algorithm': unsupported compression algorithm 'lzo-rle'"
    )
    message = config_error("\n[zram0]\n\ncompression-algorithm = 842\n")
    assert message == (
        f"{PATH}:4: key 'compression-algorithm': unsupported compression algorithm '842'; "
        f"zramd implements {', '.join(compress.algorithm_names())}"
    )


@pytest.mark.parametrize(("value", "priority"), [("0", 0), ("-1", -1), ("32767", 32767), ("+5", 5)])
def test_swap_priority(value: str, priority: int) -> None:
    assert devices(f"[zram0]\nswap-priority = {value}\n")["zram0"].swap_priority == priority


@pytest.mark.parametrize("value", ["high", "1.5", "", "10 20"])
def test_swap_priority_not_an_integer(value: str) -> None:
    message = config_error(f"[zram0]\nswap-priority = {value}\n")
    assert (
        message == f"{PATH}:2: key 'swap-priority': expected a whole number from -1 to 32767, got {value!r}"
    )


@pytest.mark.parametrize("value", ["-2", "32768"])
def test_swap_priority_out_of_range(value: str) -> None:
    assert config_error(f"[zram0]\nswap-priority = {value}\n").startswith(
        f"{PATH}:2: key 'swap-priority': {int(value)} is out of range"
    )


def test_fs_type_and_mount_point() -> None:
    assert devices("[zram0]\nfs-type = ext4\n")["zram0"].fs_type == "ext4"
    assert devices("[zram0]\nfs-type = swap\n")["zram0"].mount_point is None
    assert devices("[zram0]\nmount-point = /mnt\n")["zram0"].fs_type == "ext2"
    assert config_error("[zram0]\nfs-type =\n").startswith(f"{PATH}:2: key 'fs-type': empty")


@pytest.mark.parametrize(
    ("value", "problem"), [("foo/bar", "not an absolute path"), ("/foo/../bar", "'..'"), ("", "")]
)
def test_bad_paths(value: str, problem: str) -> None:
    for key in ("mount-point", "writeback-device"):
        message = config_error(f"[zram0]\n{key} = {value}\n")
        assert message.startswith(f"{PATH}:2: key '{key}': ")
        assert problem in message


def test_options() -> None:
    assert devices("[zram0]\noptions =\n")["zram0"].options == ""
    assert devices("[zram0]\noptions = pri=5,discard=once\n")["zram0"].options == "pri=5,discard=once"
    assert devices('[zram0]\noptions = "discard"\n')["zram0"].options == "discard"


# ---------------------------------------------------------------------------- syntax


def test_comments_blank_lines_and_spacing() -> None:
    text = "\ufeff# hash\n; semicolon\n   \n\t[ zram0 ]\r\n  zram-size=ram/2  \r\n  # indented comment\n"
    assert devices(text, 100)["zram0"].zram_size == 50 * MIB


def test_colon_separator_and_last_assignment_wins() -> None:
    zram0 = devices("[zram0]\nswap-priority: 5\nswap-priority = 7\n")["zram0"]
    assert zram0.swap_priority == 7


def test_repeated_sections_merge_and_order_is_by_number() -> None:
    text = "[zram10]\n[zram2]\nswap-priority = 1\n[zram10]\nswap-priority = 3\n[zram2]\nfs-type = ext4\n"
    result = devices(text)
    assert list(result) == ["zram2", "zram10"]
    assert (result["zram2"].swap_priority, result["zram2"].fs_type, result["zram2"].line) == (1, "ext4", 2)
    assert (result["zram10"].swap_priority, result["zram10"].line) == (3, 1)


def test_empty_config() -> None:
    assert parse_config("", PATH) == {}
    assert parse_config("# nothing\n\n", PATH) == {}


def test_inline_comment_is_part_of_the_value() -> None:
    message = config_error("[zram0]\nzram-size = ram / 2  # half\n")
    assert message.startswith(f"{PATH}:2: key 'zram-size': invalid expression 'ram / 2  # half': ")


def test_unknown_key() -> None:
    assert (
        config_error("[zram0]\nzram_size = 10\n")
        == f"{PATH}:2: key 'zram_size': unknown key (did you mean 'zram-size'?)"
    )
    message = config_error("[zram0]\nfrobnicate = 10\n")
    assert message.startswith(
        f"{PATH}:2: key 'frobnicate': unknown key (known keys: host-memory-limit, zram-size"
    )
    # keys are case-sensitive, as in zram-generator
    assert config_error("[zram0]\nZram-Size = 10\n").startswith(f"{PATH}:2: key 'Zram-Size': unknown key")


def test_bad_expression() -> None:
    message = config_error("# c\n[zram0]\nzram-size = min(ram, 4096\n")
    assert message == (
        f"{PATH}:3: key 'zram-size': invalid expression 'min(ram, 4096': "
        "at the end: missing ')' to close min( at column 4"
    )
    message = config_error("[zram0]\nzram-resident-limit = ram * bogus\n")
    assert message == (
        f"{PATH}:2: key 'zram-resident-limit': invalid expression 'ram * bogus': "
        "at column 7: unknown variable 'bogus' (the only variable is 'ram')"
    )


def test_key_outside_a_section() -> None:
    assert (
        config_error("zram-size = 100\n[zram0]\n")
        == f"{PATH}:1: key 'zram-size': outside any [zramN] section"
    )


@pytest.mark.parametrize(
    "name", ["swap", "zram", "zram-1", "zram01", "zramX", "zram 0", "Zram0", "zram+5", ""]
)
def test_bad_section_name(name: str) -> None:
    message = config_error(f"# first\n[{name}]\nzram-size = 1\n")
    assert (
        message == f"{PATH}:2: section [{name.strip()}]: not a device section; expected [zramN], e.g. [zram0]"
    )


@pytest.mark.parametrize("line", ["zram-size", "[zram0", "[zram0] # comment", "= 5"])
def test_bad_lines(line: str) -> None:
    message = config_error(f"[zram1]\n{line}\n")
    assert message.startswith(f"{PATH}:2: ")


def test_config_error_is_a_user_error() -> None:
    with pytest.raises(ConfigError) as info:
        devices("[zram0]\nswap-priority = x\n")
    assert isinstance(info.value, UserError)
    assert info.value.exit_code == 1
    assert (info.value.path, info.value.line, info.value.key) == (PATH, 2, "swap-priority")


# -------------------------------------------------------------------------- load_config


def test_load_config(tmp_path: Path) -> None:
    conf = tmp_path / "zramd.conf"
    conf.write_text("[zram0]\nzram-size = 256\n", encoding="utf-8")
    assert load_config(str(conf), 1 << 30)["zram0"].zram_size == 256 * MIB


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: cannot read the configuration: No such file")):
        load_config(path)
    with pytest.raises(ConfigError, match="Is a directory"):
        load_config(str(tmp_path))


def test_load_config_not_utf8(tmp_path: Path) -> None:
    conf = tmp_path / "zramd.conf"
    conf.write_bytes(b"[zram0]\n# caf\xe9\n")
    with pytest.raises(ConfigError, match=re.escape(f"{conf}:2: not valid UTF-8")):
        load_config(str(conf))


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "zramd.conf"
    conf.write_text("[zram0]\nswap-priority = high\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{conf}:2: key 'swap-priority': ")):
        load_config(str(conf), 1 << 30)


def test_ram_defaults_to_memtotal() -> None:
    meminfo = Path("/proc/meminfo")
    if not meminfo.exists():
        pytest.skip("no /proc/meminfo")
    kib = next(
        int(line.split()[1]) for line in meminfo.read_text().splitlines() if line.startswith("MemTotal:")
    )
    assert parse_config("[zram0]\nzram-size = ram\n")["zram0"].zram_size == (kib // 1024) * MIB


# ---------------------------------------------------------------------- the expressions


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("[1 + 2] * 3", 9),
        ("2 ^ 3 ^ 2", 512),  # right to left
        ("2 * 3 ^ 2", 18),
        ("10 - 4 - 3", 3),
        ("100 / 10 / 5", 2),
        ("7 % 4", 3),
        ("-7 % 4", -3),  # the sign of the dividend, as Rust's %
        ("2 * 3 % 2", 2),  # fasteval applies % before *: 2 * (3 % 2)
        ("-2 ^ 2", 4),  # unary minus binds to the value: (-2) ^ 2
        ("2 ^ -1", 0.5),
        ("- -3", 3),
        ("+3", 3),
        ("1 < 2", 1),
        ("2 <= 1", 0),
        ("3 > 2 == 1", 1),
        ("1 != 1", 0),
        ("0.1 + 0.2 == 0.3", 1),  # within 8 epsilon
        ("0 && 5", 0),
        ("3 && 5", 5),
        ("0 || 5", 5),
        ("3 || 5", 3),
        ("!0", 1),
        ("!3", 0),
        ("ram", 8192),
        ("ram / 2", 4096),
        ("ram > 4096 && 4096 || ram", 4096),
        ("min(3, 1, 2)", 1),
        ("max(3, 1, 2)", 3),
        ("min(5)", 5),
        ("max(ram / 4; 100)", 2048),
        ("min(ram / 2, 4096)", 4096),
        ("1.5", 1.5),
        (".5", 0.5),
        ("5.", 5),
        ("1e3", 1000),
        ("2.5E-1", 0.25),
        ("1.5k", 1500),
        ("2K", 2000),
        ("3M", 3e6),
        ("4G", 4e9),
        ("1T", 1e12),
        ("5m", 0.005),
        ("int(-2.7)", -2),
        ("ceil(2.1)", 3),
        ("floor(-2.1)", -3),
        ("abs(-4)", 4),
        ("sign(-4)", -1),
        ("log(1000)", 3),
        ("log(2, 1024)", 10),
        ("round(2.5)", 3),  # half away from zero, as Rust
        ("round(-2.5)", -3),
        ("round(0.25, 1.3)", 1.25),
        ("e()", math.e),
        ("pi()", math.pi),
        ("cos(0)", 1),
        ("  \tram\n*\r2 ", 16384),
        ("min(min(ram, 4096) + max(ram - 4096, 0) / 2, 32 * 1024)", 6144),
    ],
)
def test_evaluate(expr: str, value: float) -> None:
    assert evaluate_expression(expr, 8192) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("", "empty expression"),
        ("   ", "empty expression"),
        ("x", "at column 1: unknown variable 'x' (the only variable is 'ram')"),
        ("RAM", "unknown variable 'RAM'"),
        ("pi", "unknown variable 'pi' (the constant is written pi())"),
        ("foo(1)", "at column 1: unknown function 'foo'"),
        ("__import__(1)", "unknown function '__import__'"),
        ("print(1)", "print() is not supported"),
        ("min()", "min() takes at least 1 argument, got 0"),
        ("log(1, 2, 3)", "log() takes 1 or 2 arguments, got 3"),
        ("abs(1, 2)", "abs() takes 1 argument, got 2"),
        ("pi(1)", "pi() takes 0 arguments, got 1"),
        ("1 / 0", "division by zero"),
        ("ram / (ram - 8192)", "division by zero"),
        ("1 % 0", "modulo by zero"),
        ("round(0, 1)", "round() with a modulus of zero"),
        ("(1 + 2", "at the end: missing ')' to close the '(' at column 1"),
        ("((1)", "missing ')'"),
        ("(1]", "at column 3: expected ')' (for the '(' at column 1)"),
        ("1 + 2)", "at column 6: unbalanced ')'"),
        ("min(1, 2", "missing ')' to close min("),
        ("min(1 2)", "expected ',' or ')' in the arguments of min()"),
        ("min(1,)", "at column 7: expected a number, 'ram', a function call or '(', not ')'"),
        ("1 2", "at column 3: unexpected '2' after the expression"),
        ("ram 2", "unexpected '2' after the expression"),
        ("2ram", "unexpected 'ram' after the expression"),
        ("4GiB", "unexpected 'iB' after the expression"),
        ("1 = 1", "unexpected '= 1' after the expression"),
        ("ram.real", "unexpected '.real' after the expression"),
        ("'1'", "at column 1: expected a number, 'ram', a function call or '(', not \"'\""),
        ("1 +", "at the end: expected a number, 'ram', a function call or '('"),
        ("*2", "not '*'"),
        ("1.2.3", "invalid number '1.2.3'"),
        ("2e", "invalid number '2e'"),
        (".", "invalid number '.'"),
        ("10 ^ 400", "the result is inf, not a finite number"),
        ("log(0)", "the result is -inf"),
        ("log(-1)", "the result is nan"),
        ("asin(2)", "the result is nan"),
        ("(" * 40 + "1" + ")" * 40, "nested more than 32 levels deep"),
        ("1+" * 2100 + "1", "longer than 4096 characters"),
    ],
)
def test_evaluate_errors(expr: str, problem: str) -> None:
    with pytest.raises(ExpressionError) as info:
        evaluate_expression(expr, 8192)
    assert problem in str(info.value)


def test_short_circuit_skips_the_other_side() -> None:
    assert evaluate_expression("0 && 1 / 0", 1) == 0
    assert evaluate_expression("1 || 1 / 0", 1) == 1
    with pytest.raises(ExpressionError):
        evaluate_expression("1 && 1 / 0", 1)


def test_intermediate_infinity_like_fasteval() -> None:
    # fasteval computes with IEEE floats: only the final result must be finite
    assert evaluate_expression("min(10 ^ 400, 4096)", 1) == 4096
