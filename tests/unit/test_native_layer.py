"""The layer check (native/layer.py) accepts a well-formed layer zip and names what is wrong with others."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("native_layer", ROOT / "native" / "layer.py")
layer: Any = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(layer)  # type: ignore[union-attr]

WHEEL = "sendtrail_native-0.1.0-cp311-abi3-manylinux2014_{platform}.manylinux_2_17_{platform}.whl"
SO = "python/sendtrail_native/sendtrail_native.abi3.so"


def _elf(machine: int, glibc: str = "2.17") -> bytes:
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4], header[5] = 2, 1  # 64-bit, little-endian
    header[16:18] = (3).to_bytes(2, "little")  # ET_DYN
    header[18:20] = machine.to_bytes(2, "little")
    return bytes(header) + b"\x00GLIBC_2.2.5\x00GLIBC_" + glibc.encode() + b"\x00"


def _zip(path: Path, files: dict[str, bytes], wheel: str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.comment = wheel.encode()
    return path


def _good(tmp_path: Path, arch: str = "arm64", machine: int = 0xB7, **overrides: Any) -> Path:
    platform = layer.ARCHITECTURES[arch][2]
    files = {"python/sendtrail_native/__init__.py": b"", SO: _elf(machine)}
    files.update(overrides.get("files", {}))
    return _zip(tmp_path / f"sendtrail-native-{arch}.zip", files, overrides.get("wheel", WHEEL.format(platform=platform)))


def test_a_well_formed_layer_passes(tmp_path: Path) -> None:
    layer.check(_good(tmp_path))
    layer.check(_good(tmp_path, "x86_64", 0x3E))


@pytest.mark.parametrize("case, message", [
    ("wrong machine", "ELF machine 0x3e, not arm64"),
    ("new glibc", "needs glibc 2.28"),
    ("outside python/", "files outside python/"),
    ("not abi3", "not a cp311-abi3 manylinux2014_aarch64 wheel"),
    ("x86 wheel", "not a cp311-abi3 manylinux2014_aarch64 wheel"),
])
def test_what_is_wrong_is_named(tmp_path: Path, case: str, message: str) -> None:
    platform = "aarch64"
    broken = {
        "wrong machine": {"files": {SO: _elf(0x3E)}},
        "new glibc": {"files": {SO: _elf(0xB7, "2.28")}},
        "outside python/": {"files": {"sendtrail_native/__init__.py": b""}},
        "not abi3": {"wheel": WHEEL.format(platform=platform).replace("cp311-abi3", "cp311-cp311")},
        "x86 wheel": {"wheel": WHEEL.format(platform="x86_64")},
    }[case]
    with pytest.raises(layer.LayerError, match=message):
        layer.check(_good(tmp_path, **broken))


def test_the_installed_module_is_a_host_shared_object() -> None:
    sendtrail_native = pytest.importorskip("sendtrail_native", reason="the native module is not built (make native)")
    [shared_object] = Path(sendtrail_native.__file__).parent.glob("*.abi3.so")
    assert layer.elf_machine(shared_object.read_bytes()) == 0x3E or sys.platform != "linux"


def test_a_built_x86_64_layer_imports_and_verifies_a_token(tmp_path: Path) -> None:
    """The layer's python/ directory is importable as Lambda's /opt/python (make test builds the x86_64 zip)."""
    built = layer.layer_path("x86_64")
    if not built.exists():
        if os.environ.get("REQUIRE_NATIVE_MODULE") == "1":  # make test: its prerequisite, so missing is a failure
            pytest.fail(f"{built} is missing: `make test` builds it (make {built.relative_to(ROOT)})")
        pytest.skip("no layer built (make layer)")
    layer.check(built)
    with zipfile.ZipFile(built) as archive:
        archive.extractall(tmp_path)
    probe = ("import sendtrail_native, sys; from chalicelib import tokens; "
             "t = tokens.mint(1, 1, b'k' * 32, '0123456789abcdef', 4, 5); "
             "assert sendtrail_native.__file__.startswith(sys.argv[1]); "
             "print(sendtrail_native.verify_token(t, {1: b'k' * 32}))")
    output = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path[:0] = [sys.argv[1], {str(ROOT)!r}]; "
                             + probe, str(tmp_path / "python")], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "(1, 1, '0123456789abcdef', 4, 5)"
