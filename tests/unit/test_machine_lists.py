"""Refreshing the human/machine lists from downloaded files (sendtrail lists ...)."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import pytest

from chalicelib.tracking import classify
from infra import cli, machine_lists

APPLE_CSV = "172.224.226.0/27,GB,GB-EN,London,\n172.224.226.32/27,GB,GB-EN,London,\n2a02:26f7:b3c0:4000::/64,FR,FR-IDF,Paris,\n"
MICROSOFT_JSON = json.dumps([{"id": 9, "serviceArea": "Exchange", "ips": ["40.92.0.0/15", "2a01:111:f400::/48"],
                              "urls": ["*.mail.protection.outlook.com"]}])


@pytest.fixture()
def lists(tmp_path: Path) -> tuple[Path, Path]:
    agents, addresses = tmp_path / "agents.json", tmp_path / "addresses.json"
    shutil.copy(classify.AGENTS_FILE, agents)
    shutil.copy(classify.ADDRESSES_FILE, addresses)
    return agents, addresses


def test_ranges_come_from_csv_json_and_text_collapsed() -> None:
    assert [str(n) for n in machine_lists.networks_in(APPLE_CSV)] == ["172.224.226.0/26", "2a02:26f7:b3c0:4000::/64"]
    assert [str(n) for n in machine_lists.networks_in(MICROSOFT_JSON)] == ["40.92.0.0/15", "2a01:111:f400::/48"]
    assert [str(n) for n in machine_lists.networks_in("# scanner\n64.235.144.0/20\nnot a range\n")] == [
        "64.235.144.0/20"]


def test_an_import_replaces_the_providers_entries_and_dates_the_version(lists: tuple[Path, Path]) -> None:
    agents, addresses = lists
    source = "https://mask-api.icloud.com/egress-ip-ranges.csv"
    day = datetime.date(2027, 1, 2)
    assert machine_lists.import_ranges(APPLE_CSV, "Apple Private Relay", "apple_proxy", source, addresses, day) == (0, 2)
    assert machine_lists.import_ranges(APPLE_CSV, "Apple Private Relay", "apple_proxy", source, addresses, day) == (2, 2)
    document = json.loads(addresses.read_text())
    assert document["version"] == "2027-01-02"
    assert {"network": "172.224.226.0/26", "signal": "apple_proxy", "provider": "Apple Private Relay",
            "source": source} in document["ranges"]
    loaded = classify.load_lists(agents, addresses)
    assert loaded.v4.lookup(int.from_bytes(bytes([172, 224, 226, 40]), "big")) == classify.ADDRESS_APPLE
    assert machine_lists.import_agents("Acme-LinkScan\n# comment\nAcme-LinkScan\n", "Acme", "scanner",
                                       "https://acme.example/scanner", agents, day) == (0, 1)
    assert classify.load_lists(agents, addresses).markers[-1] == ("acme-linkscan", classify.AGENT_SCANNER)


def test_nothing_to_import_or_an_unknown_signal_is_refused(lists: tuple[Path, Path]) -> None:
    _, addresses = lists
    with pytest.raises(machine_lists.ListError, match="no address range"):
        machine_lists.import_ranges("nothing here\n", "X", "scanner", "s", addresses)
    with pytest.raises(machine_lists.ListError, match="signal must be"):
        machine_lists.import_ranges(APPLE_CSV, "X", "crawler", "s", addresses)


def test_the_cli_shows_the_lists(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["lists", "show"]) == 0
    output = capsys.readouterr().out
    assert "apple_proxy" in output and "Mimecast (US)" in output


def test_the_cli_imports_a_downloaded_file(tmp_path: Path, lists: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    _, addresses = lists
    monkeypatch.setattr(classify, "ADDRESSES_FILE", addresses)
    monkeypatch.setattr(machine_lists.import_ranges, "__defaults__", (addresses, None))
    downloaded = tmp_path / "egress-ip-ranges.csv"
    downloaded.write_text(APPLE_CSV)
    assert cli.main(["lists", "import-ranges", str(downloaded), "--provider", "Apple Private Relay",
                     "--signal", "apple_proxy", "--source", "https://mask-api.icloud.com/egress-ip-ranges.csv"]) == 0
    assert "0 entries replaced by 2" in capsys.readouterr().out
    assert "Apple Private Relay" in addresses.read_text()
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert cli.main(["lists", "import-ranges", str(empty), "--provider", "X", "--signal", "scanner",
                     "--source", "s"]) == 2
