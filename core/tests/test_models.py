"""Models validate at construction, and survive the codec round trip unchanged."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from camgate.codec import dump, load
from camgate.errors import ValidationError
from camgate.models import (
    AccessRequest,
    Camera,
    ConsentRecord,
    ConsentTerms,
    Decision,
    GeoPoint,
    Grant,
    Incident,
    Scope,
    Verdict,
    Vote,
    Waiver,
)
from hypothesis import given
from hypothesis import strategies as st

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
lats = st.floats(-90, 90, allow_nan=False)
lons = st.floats(-180, 180, allow_nan=False)
aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
#: Ids as the models accept them (ID_RULE): a letter or digit first.
ids = st.builds(
    str.__add__,
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=1),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", max_size=19),
)


@given(lats, lons)
def test_geopoint_accepts_every_valid_position(lat: float, lon: float) -> None:
    p = GeoPoint(lat, lon)
    assert load(GeoPoint, dump(p)) == p


@given(
    st.one_of(
        st.floats(allow_nan=True).filter(lambda v: math.isnan(v) or abs(v) > 90),
        st.just(math.inf),
    )
)
def test_geopoint_refuses_bad_latitude_with_its_name(lat: float) -> None:
    with pytest.raises(ValidationError, match="lat="):
        GeoPoint(lat, 0.0)


@given(st.floats(allow_nan=True).filter(lambda v: math.isnan(v) or abs(v) > 180))
def test_geopoint_refuses_bad_longitude(lon: float) -> None:
    with pytest.raises(ValidationError, match="lon="):
        GeoPoint(0.0, lon)


def test_bool_is_not_a_coordinate() -> None:
    with pytest.raises(ValidationError, match="number"):
        GeoPoint(True, 0.0)  # type: ignore[arg-type]


cameras = st.builds(
    Camera,
    id=ids,
    adapter=st.sampled_from(["rtsp", "onvif"]),
    source=ids.map(lambda s: f"rtsp://10.0.0.1:554/{s}"),
    owner_id=ids,
    position=st.builds(GeoPoint, lats, lons),
    camera_class=st.sampled_from(["private", "city"]),
    heading_deg=st.none() | st.floats(0, 360),
    range_m=st.none() | st.floats(0.1, 1e4),
)


@given(cameras)
def test_camera_round_trips(camera: Camera) -> None:
    assert load(Camera, dump(camera)) == camera


@pytest.mark.parametrize(
    "source", ["rtsp://admin:hunter2@10.0.0.5/stream", "rtsp://admin@10.0.0.5/stream"]
)
def test_camera_source_must_not_carry_credentials_and_error_does_not_echo_them(
    source: str,
) -> None:
    with pytest.raises(ValidationError) as info:
        Camera(id="c", adapter="rtsp", source=source, owner_id="o", position=GeoPoint(0, 0))
    assert "hunter2" not in str(info.value)
    assert "admin" not in str(info.value)


def test_field_of_view_needs_a_heading() -> None:
    with pytest.raises(ValidationError, match="heading_deg"):
        Camera(
            id="c",
            adapter="rtsp",
            source="rtsp://h/x",
            owner_id="o",
            position=GeoPoint(0, 0),
            fov_deg=90,
        )


@pytest.mark.parametrize(
    ("field", "value"), [("heading_deg", 361), ("fov_deg", 0), ("range_m", -1)]
)
def test_camera_field_of_view_ranges(field: str, value: float) -> None:
    base = {"heading_deg": 10.0}
    with pytest.raises(ValidationError, match=field):
        Camera(
            id="c",
            adapter="rtsp",
            source="rtsp://h/x",
            owner_id="o",
            position=GeoPoint(0, 0),
            **(base | {field: value}),
        )


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        Incident(
            id="i",
            kind="burglary",
            position=GeoPoint(0, 0),
            reported_at=datetime(2026, 1, 1),
            radius_m=10,
        )


@given(st.floats(allow_nan=True).filter(lambda v: not (v > 0) or math.isinf(v)))
def test_incident_radius_must_be_positive_and_finite(radius: float) -> None:
    with pytest.raises(ValidationError, match="radius_m"):
        Incident(id="i", kind="k", position=GeoPoint(0, 0), reported_at=NOW, radius_m=radius)


def test_unknown_scope_names_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="live, recorded, snapshot"):
        ConsentTerms(scopes=["live", "audio-only"])


def test_waiver_hash_is_of_the_exact_text() -> None:
    a, b = Waiver("1", "I agree."), Waiver("1", "I agree. ")
    assert a.sha256 != b.sha256
    assert len(a.sha256) == 64
    assert "I agree" not in repr(a)


@given(ids, st.lists(ids, min_size=1, max_size=4), aware, st.sets(st.sampled_from(list(Scope))))
def test_consent_record_round_trips(
    owner: str, cams: list[str], at: datetime, scopes: set[Scope]
) -> None:
    record = ConsentRecord(
        id="con_1",
        owner_id=owner,
        camera_ids=cams,
        waiver_version="v1",
        waiver_sha256=Waiver("v1", "text").sha256,
        accepted_at=at,
        terms=ConsentTerms(scopes=scopes),
    )
    assert load(ConsentRecord, dump(record)) == record


def test_consent_record_needs_a_real_hash_and_a_camera() -> None:
    common = dict(
        id="c",
        owner_id="o",
        waiver_version="1",
        accepted_at=NOW,
        terms=ConsentTerms(scopes=["live"]),
    )
    with pytest.raises(ValidationError, match="waiver_sha256"):
        ConsentRecord(camera_ids=["a"], waiver_sha256="abc", **common)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="camera_ids"):
        ConsentRecord(camera_ids=[], waiver_sha256="a" * 64, **common)  # type: ignore[arg-type]


def test_recorded_request_needs_an_ordered_window() -> None:
    common = dict(id="r", incident_id="i", camera_id="c", requested_by="o", requested_at=NOW)
    with pytest.raises(ValidationError, match="window"):
        AccessRequest(scope="recorded", **common)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="window_end"):
        AccessRequest(scope="recorded", window_start=NOW, window_end=NOW, **common)  # type: ignore[arg-type]
    ok = AccessRequest(
        scope="recorded", window_start=NOW - timedelta(hours=1), window_end=NOW, **common
    )  # type: ignore[arg-type]
    assert load(AccessRequest, dump(ok)) == ok


votes = st.builds(Vote, policy=ids, verdict=st.sampled_from(list(Verdict)), reason=ids)


@given(st.lists(votes, max_size=6))
def test_any_deny_wins_and_allow_needs_a_voice(vs: list[Vote]) -> None:
    decision = Decision("r", "c", vs, NOW)
    verdicts = {v.verdict for v in vs}
    assert decision.allowed == (Verdict.DENY not in verdicts and Verdict.ALLOW in verdicts)
    assert len(decision.reasons) == sum(v.verdict is Verdict.DENY for v in vs)


def test_grant_expiry_must_follow_issue() -> None:
    with pytest.raises(ValidationError, match="expires_at"):
        Grant(
            id="g",
            request_id="r",
            camera_id="c",
            incident_id="i",
            scope="live",
            issued_at=NOW,
            expires_at=NOW,
        )


def test_evolve_validates_again() -> None:
    p = GeoPoint(1, 2)
    with pytest.raises(ValidationError):
        attrs.evolve(p, lat=100)


def test_codec_refuses_unknown_and_malformed_keys() -> None:
    with pytest.raises(ValidationError, match="unknown keys"):
        load(GeoPoint, {"lat": 1, "lon": 2, "alt": 3})
    with pytest.raises(ValidationError, match="Incident.reported_at"):
        load(
            Incident,
            {
                "id": "i",
                "kind": "k",
                "position": {"lat": 0, "lon": 0},
                "reported_at": "yesterday",
                "radius_m": 5,
            },
        )
    with pytest.raises(ValidationError, match="expected an object"):
        load(GeoPoint, [1, 2])


@pytest.mark.parametrize(
    "source",
    [
        "rtsp://10.0.0.5/cam/realmonitor?channel=1&user=admin&password=hunter2",
        "http://10.0.0.5/snap.jpg?PWD=hunter2",
        "rtsp://10.0.0.5/live?token=abc",
    ],
)
def test_credentials_in_a_query_string_are_refused_too(source: str) -> None:
    with pytest.raises(ValidationError, match="must not carry credentials") as info:
        Camera(id="c", adapter="rtsp", source=source, owner_id="o", position=GeoPoint(0, 0))
    assert "hunter2" not in str(info.value)


def test_canonical_json_refuses_nan() -> None:
    from camgate.codec import canonical

    with pytest.raises(ValueError, match="JSON compliant"):
        canonical({"x": float("nan")})
