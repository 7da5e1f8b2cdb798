"""The machine's disk bytes count its physical disks, not the virtual block devices on them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from modelpilot.monitoring.system import SYS_BLOCK, SystemCollector, disk_bytes, physical_disks

PHYSICAL = ("sda", "nvme0n1", "vda", "cciss!c0d0")
VIRTUAL = ("dm-0", "dm-1", "md0", "loop0", "loop7", "zram0", "ram0")


def fake_sys_block(root: Path) -> Path:
    """A ``/sys/block`` as Linux lays it out: each entry a link to the device's directory,
    which a disk's hardware (a ``device`` link) stands behind and a virtual device's does not."""
    block = root / "block"
    block.mkdir()
    for name in PHYSICAL:
        hardware = root / "devices" / "pci0000:00" / name.replace("!", "-")
        node = hardware / "block" / name
        node.mkdir(parents=True)
        (node / "device").symlink_to(hardware)
        (block / name).symlink_to(node)
    for name in VIRTUAL:
        node = root / "devices" / "virtual" / "block" / name
        node.mkdir(parents=True)
        (block / name).symlink_to(node)
    return block


def test_only_block_devices_with_hardware_behind_them_are_disks(tmp_path: Path) -> None:
    """psutil's total summed every block device: on LVM each byte counted on ``dm-0`` and
    again on the disk under it (three times with LUKS on LVM)."""
    assert physical_disks(fake_sys_block(tmp_path)) == {"sda", "nvme0n1", "vda", "cciss/c0d0"}
    assert physical_disks(tmp_path / "missing") == set()


def test_no_disk_is_no_figure_rather_than_zero(tmp_path: Path) -> None:
    block = tmp_path / "block"
    block.mkdir()
    (block / "dm-0").mkdir()
    assert disk_bytes(block) is None


def diskstats_bytes() -> tuple[int, int]:
    """/proc/diskstats' bytes read and written of the devices not under ``devices/virtual``
    (sectors of 512 bytes, whatever the disk's own)."""
    read = written = 0
    for line in Path("/proc/diskstats").read_text().splitlines():
        fields = line.split()
        name = fields[2]
        entry = SYS_BLOCK / name.replace("/", "!")
        if entry.exists() and "/virtual/" not in os.path.realpath(entry):
            read += int(fields[5]) * 512
            written += int(fields[9]) * 512
    return read, written


@pytest.mark.skipif(not Path("/proc/diskstats").exists(), reason="Linux only")
def test_the_exported_bytes_are_this_machines_physical_disks() -> None:
    registry = CollectorRegistry()
    registry.register(SystemCollector())
    before = diskstats_bytes()
    read = registry.get_sample_value("modelpilot_system_disk_read_bytes_total")
    written = registry.get_sample_value("modelpilot_system_disk_written_bytes_total")
    after = diskstats_bytes()
    assert read is not None and written is not None
    assert before[0] <= read <= after[0]
    assert before[1] <= written <= after[1]
    help_text = next(m for m in registry.collect() if m.name.endswith("disk_read_bytes"))
    assert "physical disks" in help_text.documentation
