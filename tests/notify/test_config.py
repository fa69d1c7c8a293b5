"""oncall.yaml: the demo loads; every route must end at an accountable person of its tenant (a vendor-only
first step, a contractor as final fallback, another tenant's policy, a muted route that could match a
critical alarm, a tenant without a route are refused with file:line); rotations hand over on time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pumpwatch.alarms.notify.config import load_oncall
from pumpwatch.core.config import ConfigError, Fleet, load_fleet
from tests.conftest import DEMO_FLEET

BASE = """\
channels:
  mail: {type: email, host: 127.0.0.1, from: pw@city.example.jp}
people:
  - {id: duty1, name: Duty One, tenant: kita, contacts: [{channel: mail, to: d1@kita.example.jp}]}
  - {id: duty2, name: Duty Two, tenant: kita, contacts: [{channel: mail, to: d2@kita.example.jp}]}
  - {id: chief, name: Chief, tenant: kita, contacts: [{channel: mail, to: chief@kita.example.jp}]}
  - {id: vendor, name: Vendor, tenant: kita, kind: contractor, contacts: [{channel: mail, to: v@vendor.jp}]}
  - {id: m1, name: Minami One, tenant: minami, contacts: [{channel: mail, to: m1@minami.example.jp}]}
  - {id: c1, name: Centre One, tenant: centre, contacts: [{channel: mail, to: c1@centre.example.jp}]}
rotations:
  - id: kita-duty
    tenant: kita
    members: [duty1, duty2]
    handovers: ["mon 09:00", "thu 18:00"]
    start: 2026-06-29
    overrides:
      - {person: chief, start: "2026-07-04T20:00:00", end: "2026-07-05T08:00:00"}
policies:
  - id: kita-std
    tenant: kita
    steps:
      - {notify: [{rotation: kita-duty}], wait_min: 5}
    final: chief
  - {id: minami-std, tenant: minami, steps: [{notify: [{person: m1}]}], final: m1}
  - {id: centre-std, tenant: centre, steps: [{notify: [{person: c1}]}], final: c1}
"""
ROUTING = """\
routing:
  - {tenant: kita, policy: kita-std}
  - {tenant: minami, policy: minami-std}
  - {tenant: centre, policy: centre-std}
"""


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet(DEMO_FLEET)


def load(tmp_path: Path, fleet: Fleet, text: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "oncall.yaml"
    p.write_text(text, encoding="utf-8")
    return load_oncall(p, fleet)


def problems(tmp_path: Path, fleet: Fleet, text: str) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        load(tmp_path, fleet, text)
    return ei.value.problems


def test_the_demo_configuration_loads(fleet: Fleet) -> None:
    assert fleet.oncall is not None
    oc = load_oncall(fleet.oncall, fleet)
    assert set(oc.routing) == set(fleet.tenants)
    r = oc.route("kita", "manhole_pump", "KITA-MP-01", "critical", "pump1_fault")
    assert r.policy is not None and r.policy.id == "kita-pumps"
    assert oc.route("kita", "manhole_pump", "KITA-MP-01", "low", "door_open").policy is None  # muted


def test_rotation_hands_over_on_time_in_tokyo_and_overrides_win(tmp_path: Path, fleet: Fleet) -> None:
    oc = load(tmp_path, fleet, BASE + ROUTING)

    def who(iso: str) -> str:
        return oc.on_call("kita-duty", datetime.fromisoformat(iso))

    assert who("2026-06-29T08:59:00+09:00") == "duty2"  # before the first hand-over: last week's shift
    assert who("2026-06-29T09:00:00+09:00") == "duty1"
    assert who("2026-07-02T17:59:00+09:00") == "duty1"
    assert who("2026-07-02T09:00:00+00:00") == "duty2"  # 18:00 in Tokyo
    assert who("2026-07-04T20:30:00+09:00") == "chief"  # override
    assert who("2026-07-05T08:00:00+09:00") == "duty2"  # override over
    assert who("2026-07-06T09:00:00+09:00") == "duty1"  # next Monday
    tokyo = ZoneInfo("Asia/Tokyo")
    assert oc.roster("kita", datetime(2026, 7, 1, tzinfo=UTC)) == [
        {
            "rotation": "kita-duty",
            "person": "duty1",
            "name": "Duty One",
            # next: the Thursday 18:00 hand-over (Tokyo)
            "next_at": datetime(2026, 7, 2, 18, 0, tzinfo=tokyo),
            "next_person": "duty2",
            "next_name": "Duty Two",
        }
    ]
    # on Saturday evening the next change is the override's start, then its end hands back to duty2
    nxt = oc.next_change("kita-duty", datetime.fromisoformat("2026-07-04T12:00:00+09:00"))
    assert nxt == (datetime(2026, 7, 4, 20, 0, tzinfo=tokyo), "chief")
    nxt = oc.next_change("kita-duty", datetime.fromisoformat("2026-07-04T21:00:00+09:00"))
    assert nxt == (datetime(2026, 7, 5, 8, 0, tzinfo=tokyo), "duty2")


def test_a_vendor_only_route_is_refused(tmp_path: Path, fleet: Fleet) -> None:
    text = BASE.replace(
        "      - {notify: [{rotation: kita-duty}], wait_min: 5}",
        "      - {notify: [{person: vendor}], wait_min: 5}",
    )
    [p] = problems(tmp_path, fleet, text + ROUTING)
    assert "oncall.yaml:22 policies[0].steps[0].notify" in p and "no accountable person of 'kita'" in p


def test_a_contractor_as_final_fallback_is_refused(tmp_path: Path, fleet: Fleet) -> None:
    [p] = problems(tmp_path, fleet, BASE.replace("    final: chief", "    final: vendor") + ROUTING)
    assert "oncall.yaml:23 policies[0].final" in p and "contractor" in p


def test_a_rotation_with_a_contractor_is_not_accountable_alone(tmp_path: Path, fleet: Fleet) -> None:
    [p] = problems(
        tmp_path, fleet, BASE.replace("members: [duty1, duty2]", "members: [duty1, vendor]") + ROUTING
    )
    assert "steps[0].notify" in p


def test_routes_end_at_a_person_of_their_own_tenant(tmp_path: Path, fleet: Fleet) -> None:
    ps = problems(
        tmp_path,
        fleet,
        BASE
        + """\
routing:
  - tenant: kita
    policy: minami-std
    routes:
      - {match: {priority: [critical, high]}, mute: true}
      - {match: {station: [MINAMI-MP-01]}, policy: kita-std}
""",
    )
    text = "\n".join(ps)
    assert "routing[0].policy: policy 'minami-std' belongs to tenant 'minami'" in text
    assert "routing[0].routes[0].mute: a muted route must match only non-critical" in text
    assert "routing[0].routes[1].match.station[0]: no station 'MINAMI-MP-01' in tenant 'kita'" in text
    assert "tenant 'minami' has no route" in text


def test_typos_and_unknown_names_are_located(tmp_path: Path, fleet: Fleet) -> None:
    text = (
        BASE.replace(
            "contacts: [{channel: mail, to: d2@kita.example.jp}]", "contacts: [{channel: fax, to: 1}]"
        )
        .replace('handovers: ["mon 09:00", "thu 18:00"]', 'handovers: ["monday 9am"]')
        .replace("wait_min: 5}", "wait_minutes: 5}")
    )
    ps = problems(tmp_path, fleet, text + ROUTING)
    joined = "\n".join(ps)
    assert "oncall.yaml:" in joined
    assert any("handovers" in p and "mon 09:00" in p for p in ps)
    assert any("wait_minutes" in p and "Extra inputs are not permitted" in p for p in ps)


def test_secrets_come_from_the_environment(
    tmp_path: Path, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = BASE.replace(
        "  mail: {type: email, host: 127.0.0.1, from: pw@city.example.jp}",
        "  mail: {type: email, host: 127.0.0.1, from: pw@city.example.jp, password: '${PW_SMTP_PASS}'}",
    )
    [p] = problems(tmp_path, fleet, text + ROUTING)
    assert "channels.mail.password" in p and "PW_SMTP_PASS is not set" in p
    monkeypatch.setenv("PW_SMTP_PASS", "s3cret-from-env")
    oc = load(tmp_path, fleet, text + ROUTING)
    assert oc.channels["mail"].password.get_secret_value() == "s3cret-from-env"
    assert "s3cret-from-env" not in repr(oc.channels["mail"])
