"""WebRTC receive path: time to first packet and first keyframe, and the per-packet cost.

An aiortc peer in its own process (camgate.testing.webrtc) serves WHEP on loopback and
sends H.264 (320x240@15, aiortc's libx264 encoder) with a keyframe every ``--gop`` seconds of
the camera's clock; each viewer joins at a random point of the group of pictures. Per trial,
from the call to :func:`camgate.media.webrtc.whep_connect` (offer with ICE gathered, POST, answer,
ICE, DTLS) to the first packet and to the first keyframe, interleaved in random order in the
same run:

- ``keyframe_request``: camgate's default, a PLI as soon as the first packet shows the peer;
- ``no_request``: ``keyframe_on_join=False``, the peer's own schedule (the baseline).

Then the per-access-unit cost of what replaces aiortc's decoder, on the access units of one
session: camgate's pass-through (NAL scan, SPS size on keyframes, the packet) against aiortc's
own path for the same units (its H264Decoder decoding each into a picture), with the ratio.

Usage: uv run python bench/webrtc_receive.py [--trials 15] [--gop 2]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from aiortc.codecs.h264 import H264Decoder
from aiortc.jitterbuffer import JitterFrame
from camgate.media.webrtc import WebRtcReceiver, whep_connect
from camgate.models import MediaPacket

#: The sending peer, run as its own process (``python -m camgate.testing.webrtc``).
SENDER = ["-m", "camgate.testing.webrtc"]


async def trial(url: str, request: bool) -> tuple[float, float, list[MediaPacket]]:
    """Seconds to the first packet and the first keyframe; the packets up to it and 30 after."""
    t0 = time.monotonic()
    receiver = WebRtcReceiver(keyframe_on_join=request)
    session = await whep_connect(url, receiver)
    first = keyframe = None
    got: list[MediaPacket] = []
    try:
        async for packet in receiver.packets():
            got.append(packet)
            first = first if first is not None else packet.arrival - t0
            if keyframe is None and packet.is_keyframe:
                keyframe = packet.arrival - t0
            if keyframe is not None and len(got) > 30 and got[-31].is_keyframe:
                break
    finally:
        await session.aclose()
    assert first is not None and keyframe is not None
    return first, keyframe, got


def per_packet_costs(units: list[MediaPacket], rounds: int) -> dict[str, object]:
    """Seconds per access unit: camgate's pass-through against aiortc's decoder."""
    receiver = WebRtcReceiver(max_queued=len(units) * rounds + 1, keyframe_on_join=False)
    receiver._ssrc = 1  # as after the first packet: no source lookup, no request
    t0 = time.perf_counter()
    for _ in range(rounds):
        for unit in units:
            receiver._on_frame("video/H264", unit.data, unit.pts or 0)
    passthrough = (time.perf_counter() - t0) / (rounds * len(units))
    decode = []
    for _ in range(rounds):
        decoder = H264Decoder()
        t0 = time.perf_counter()
        for unit in units:
            decoder.decode(JitterFrame(unit.data, unit.pts or 0))
        decode.append((time.perf_counter() - t0) / len(units))
    aiortc_decode = statistics.median(decode)
    return {
        "units": len(units),
        "rounds": rounds,
        "passthrough_us": round(passthrough * 1e6, 2),
        "aiortc_decode_us": round(aiortc_decode * 1e6, 2),
        "decode_over_passthrough": round(aiortc_decode / passthrough, 1),
    }


def figures(first: list[float], keyframe: list[float]) -> dict[str, object]:
    return {
        "first_packet": summary(first),
        "keyframe": summary(keyframe),
        "keyframe_after_first_packet": summary(
            [k - f for f, k in zip(first, keyframe, strict=True)]
        ),
    }


async def main(trials: int, gop: float) -> None:
    sender = await asyncio.create_subprocess_exec(
        sys.executable,
        *SENDER,
        "--keyframe-interval",
        str(gop),
        "--join-delay",
        "random",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert sender.stdout is not None
        url = (await sender.stdout.readline()).decode().split()[1]
        order = [True] * trials + [False] * trials
        random.shuffle(order)
        samples: dict[bool, tuple[list[float], list[float]]] = {True: ([], []), False: ([], [])}
        units: list[MediaPacket] = []
        for request in order:
            first, keyframe, got = await trial(url, request)
            samples[request][0].append(first)
            samples[request][1].append(keyframe)
            if not units:
                start = next(i for i, p in enumerate(got) if p.is_keyframe)
                units = got[start:]
    finally:
        sender.terminate()
        await sender.wait()
    with_request, without = figures(*samples[True]), figures(*samples[False])
    write_result(
        "webrtc_receive",
        {
            "setup": {
                "trials": trials,
                "gop_s": gop,
                "picture": "320x240@15 H.264 (aiortc libx264), WHEP on loopback",
                "join": "the sender starts sending at a random point of its first GOP "
                "(first_packet includes that wait; keyframe_after_first_packet does not)",
            },
            "keyframe_request": with_request,
            "no_request": without,
            "keyframe_after_first_packet_median_ratio": round(
                without["keyframe_after_first_packet"]["median_ms"]  # type: ignore[index]
                / with_request["keyframe_after_first_packet"]["median_ms"],  # type: ignore[index]
                1,
            ),
            "per_packet": per_packet_costs(units, rounds=20),
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=15)
    parser.add_argument("--gop", type=float, default=2.0)
    args = parser.parse_args()
    asyncio.run(main(args.trials, args.gop))
