"""Masks, clip formats and provenance through the gate and the edge (real RTSP server)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import av
import numpy as np
import pytest
from camgate import (
    AdapterFactory,
    Camera,
    Capabilities,
    ConsentRevoked,
    ConsentTerms,
    Grant,
    LiveStream,
    MediaPacket,
    SignedGrant,
    ValidationError,
    hookimpl,
)
from camgate.cli import main
from camgate.media import clip_tags, find_clip, stream_bytes
from camgate_rtsp.adapter import RtspAdapter, RtspLiveStream, RtspSettings
from camgate_rtsp.testing.server import RtspTestServer

from .conftest import World
from .test_media import POLYGONS, _decode_all, _ffmpeg_decodes, _inside, _probe, media_server

__all__ = ["media_server"]  # the module-scoped server with audio mounts, shared

pytestmark = pytest.mark.anyio


async def test_owner_sets_masks_validated_stored_and_audited(world: World) -> None:
    gate = world.gate
    for bad in (
        [[(0.1, 0.1), (0.2, 0.2)]],  # two corners
        [[(0.1, 0.1), (1.5, 0.2), (0.3, 0.4)]],  # outside 0..1
        [[(0.1, 0.1), (0.2, 0.2), (0.3, 0.3)]],  # no area
        [[(0.1, float("nan")), (0.2, 0.2), (0.3, 0.1)]],
    ):
        with pytest.raises(ValidationError):
            await gate.set_masks("alice", "cam-a", bad)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="does not belong"):
        await gate.set_masks("bob", "cam-a", POLYGONS)
    assert gate.masks("cam-a") is None
    assert not list(gate.audit.records("masks.set"))
    mask = await gate.set_masks("alice", "cam-a", POLYGONS)
    assert gate.masks("cam-a") == mask
    record = next(gate.audit.records("masks.set"))
    assert record.body["camera_id"] == "cam-a" and "alice" in record.owners
    assert len(record.body["polygons"]) == 2
    await gate.set_masks("alice", "cam-a", [])
    assert gate.masks("cam-a") is None


async def test_masked_clip_and_snapshot_leave_the_gate_masked(world: World, tmp_path: Path) -> None:
    await world.gate.set_masks("alice", "cam-a", POLYGONS)
    clip = await world.gate.edge.record_clip("cam-a", await world.grant(), tmp_path / "c.mp4", 2.0)
    frames = _decode_all(clip.path)
    assert len(frames) >= 50
    inside = _inside(POLYGONS, 640, 360)
    for frame in frames:
        assert int(frame[inside].max()) <= 24
    exported = next(world.gate.audit.records("clip.exported")).body
    assert exported["masked"] is True

    snap = await world.gate.edge.snapshot("cam-a", await world.grant("snapshot"))
    with av.open(__import__("io").BytesIO(snap.jpeg), format="image2pipe") as container:
        grey = next(iter(container.decode(video=0))).to_ndarray(format="gray")
    assert int(grey[inside].max()) <= 24
    assert grey[~inside].mean() > 60  # the rest of the picture is there


async def test_live_stream_of_a_masked_camera_is_masked(world: World, tmp_path: Path) -> None:
    await world.gate.set_masks("alice", "cam-a", POLYGONS)
    stream = await world.gate.edge.open_live("cam-a", await world.grant())
    packets = []
    async with stream:
        async for packet in stream:
            packets.append(packet)
            if len(packets) >= 45:
                break
    assert stream.masked and stream.transform is None  # masked once, upstream in the relay
    assert packets[0].is_keyframe
    assert stream.stats().nbytes == sum(p.size for p in packets)  # what was served, counted
    assert stream.info is packets[-1].stream  # the guard describes what it serves

    async def served() -> AsyncIterator[MediaPacket]:
        for packet in packets:
            yield packet

    path = tmp_path / "live.mp4"
    path.write_bytes(b"".join([c async for c in stream_bytes(served(), format="fmp4")]))
    inside = _inside(POLYGONS, 640, 360)
    frames = _decode_all(path)
    assert len(frames) == 45
    assert all(int(f[inside].max()) <= 24 for f in frames)


async def test_setting_masks_ends_open_streams(world: World) -> None:
    stream = await world.gate.edge.open_live("cam-a", await world.grant())
    async with stream:
        await stream.__anext__()
        await world.gate.set_masks("alice", "cam-a", POLYGONS)
        with anyio.fail_after(5):
            assert [p async for p in stream] == []
    assert stream.stats().end_reason == "masks-changed"


@pytest.mark.parametrize("fmt", ["fmp4", "ts", "hls"])
async def test_clip_formats_read_back(world: World, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"clip-{fmt}"
    clip = await world.gate.edge.record_clip("cam-a", await world.grant(), path, 2.0, format=fmt)
    target = path / "index.m3u8" if fmt == "hls" else path
    info = _probe(target, "stream=codec_name,width,height")
    assert info["streams"] == [{"codec_name": "h264", "width": 640, "height": 360}]
    assert _ffmpeg_decodes(target) >= 50
    assert clip.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()


async def test_clip_carries_its_grant_and_is_found_by_its_hash(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = await world.grant()
    clip = await world.gate.edge.record_clip("cam-a", token, tmp_path / "c.mp4", 1.0)
    assert clip_tags(clip.path)["camgate_grant"] == token.grant.id
    found = find_clip(world.gate.audit, clip.path)
    assert [r.body["grant_id"] for r in found] == [token.grant.id]
    # The grant in the audit record names the request, incident and officer behind the clip.
    start = next(
        r
        for r in world.gate.audit.records("access.start")
        if r.body["grant"]["id"] == token.grant.id
    )
    assert start.body["camera"] == "cam-a"

    db = str(world.gate.store.path)
    assert main(["--db", db, "audit", "find-clip", clip.path]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tagged_grant"] == token.grant.id
    assert out["records"][0]["grant"] == token.grant.id

    altered = tmp_path / "altered.mp4"
    data = bytearray(Path(clip.path).read_bytes())
    data[-1] ^= 1
    altered.write_bytes(bytes(data))
    assert find_clip(world.gate.audit, altered) == []
    assert main(["--db", db, "audit", "find-clip", str(altered)]) == 1


async def test_request_cli_writes_the_chosen_format(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--db", str(world.gate.store.path), "request", "--incident", world.incident.id]
    args += ["--camera", "cam-a", "--scope", "live", "--by", "o7", "--duration", "1"]
    args += ["--format", "hls", "--out", str(tmp_path)]
    assert await anyio.to_thread.run_sync(main, args) == 0
    result = json.loads(capsys.readouterr().out)
    playlist = Path(result["file"]) / "index.m3u8"
    assert "#EXT-X-ENDLIST" in playlist.read_text()
    assert _ffmpeg_decodes(playlist) >= 25
    assert result["sha256"] == hashlib.sha256(playlist.read_bytes()).hexdigest()


async def test_masks_cli(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(world.gate.store.path)

    async def cli(*args: str) -> int:
        return await anyio.to_thread.run_sync(main, ["--db", db, *args])

    polygon = "0.1,0.1 0.5,0.1 0.3,0.6"
    assert await cli("masks", "set", "cam-a", "--owner", "alice", "--polygon", polygon) == 0
    capsys.readouterr()
    assert await cli("masks", "show", "cam-a") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["polygons"] == [[[0.1, 0.1], [0.5, 0.1], [0.3, 0.6]]]
    assert await cli("masks", "set", "cam-a", "--owner", "alice", "--polygon", "0.1") == 1
    assert "x,y pair" in capsys.readouterr().err
    assert await cli("masks", "set", "cam-a", "--owner", "bob", "--polygon", polygon) == 1
    assert "does not belong" in capsys.readouterr().err
    assert await cli("masks", "set", "cam-a", "--owner", "alice", "--clear") == 0
    capsys.readouterr()
    assert await cli("masks", "show", "cam-a") == 0
    assert json.loads(capsys.readouterr().out)["polygons"] == []


async def test_revocation_while_writing_hls_removes_what_was_written(
    world: World, tmp_path: Path
) -> None:
    out = tmp_path / "hls"
    partial = tmp_path / ".hls.partial"  # written there until complete

    async def revoke_soon() -> None:
        with anyio.fail_after(10):
            while not partial.exists() or not any(partial.iterdir()):  # noqa: ASYNC110 - polling a directory
                await anyio.sleep(0.05)
        await world.gate.revoke("alice")

    token = await world.grant()
    async with anyio.create_task_group() as tg:
        tg.start_soon(revoke_soon)
        with pytest.raises(ConsentRevoked):
            await world.gate.edge.record_clip("cam-a", token, out, 20.0, format="hls")
    assert not out.exists()
    assert not partial.exists()
    assert not list(world.gate.audit.records("clip.exported"))


def test_masked_pixels_stay_masked_in_the_unmasked_decoder() -> None:
    """Sanity of the helper the other tests rely on: the ray cast agrees with a hand count."""
    inside = _inside([[(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]], 4, 4)
    assert inside.tolist() == [[True, True, False, False]] * 2 + [[False] * 4] * 2
    assert np.count_nonzero(inside) == 4


async def _audio_camera(
    world: World, camera_id: str, source: str, adapter: str, shares: bool, asks: bool
) -> SignedGrant:
    """Add one of Alice's cameras, enrol it for live (sound shared or not), ask for a grant."""
    camera = Camera(camera_id, adapter, source, "alice", world.cam.position)
    world.gate.add_camera(camera)
    world.gate.enrol(
        "alice",
        [camera_id],
        waiver_version="w1",
        waiver_sha256=world.waiver.sha256,
        terms=ConsentTerms(scopes=["live"], audio=shares),
    )
    return await world.gate.request_access(
        world.incident.id, camera_id, "live", requested_by="officer-7", duration_s=30, audio=asks
    )


@pytest.mark.parametrize(("shares", "asks"), [(True, True), (False, True), (True, False)])
async def test_audio_only_when_the_owner_shares_it_and_the_grant_asks(
    world: World, media_server: RtspTestServer, tmp_path: Path, shares: bool, asks: bool
) -> None:
    gate = world.gate
    token = await _audio_camera(world, "cam-av", media_server.url("/av"), "rtsp", shares, asks)
    assert token.grant.audio is (shares and asks)
    # Long enough for sound that lags the picture on a loaded machine (a track with no packet
    # would be left out of the file).
    seconds = 6.0 if token.grant.audio else 2.0
    clip = await gate.edge.record_clip("cam-av", token, tmp_path / "av.mp4", seconds)
    kinds = [s["codec_type"] for s in _probe(clip.path, "stream=codec_type")["streams"]]  # type: ignore[index]
    assert kinds == (["video", "audio"] if shares and asks else ["video"])


class _LoudAdapter(RtspAdapter):
    """A vendor adapter that sends the camera's audio whatever the grant says."""

    async def open_live(self, camera: Camera, grant: Grant) -> LiveStream:
        return await RtspLiveStream.open(self.url_for(camera), self.settings, audio=True)


class _LoudPlugin:
    @hookimpl
    def camgate_register_adapters(self, register: Any) -> None:
        register(
            AdapterFactory(
                "rtsp-loud",
                lambda settings: _LoudAdapter(RtspSettings.from_mapping(settings)),
                Capabilities(live=True, audio=True),
            )
        )


async def test_the_guard_drops_audio_a_grant_does_not_allow(
    world: World, media_server: RtspTestServer
) -> None:
    gate = world.gate
    gate.host.register(_LoudPlugin(), "loud")
    token = await _audio_camera(
        world, "cam-loud", media_server.url("/av"), "rtsp-loud", False, True
    )
    assert token.grant.audio is False  # the owner does not share sound
    stream = await gate.edge.open_live("cam-loud", token)
    kinds = []
    async with stream:
        with anyio.fail_after(30):  # the sound may lag the picture on a loaded machine
            async for packet in stream:
                kinds.append(packet.stream.kind)
                if len(kinds) >= 60 and stream.dropped_audio > 0:
                    break
    assert set(kinds) == {"video"}
    assert stream.dropped_audio > 0, "the adapter did send audio: the guard dropped it"
