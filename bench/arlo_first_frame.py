"""Time to the first decoded frame of an Arlo camera: startStream + RTSPS, against the
simulated Arlo cloud (camgate_arlo.testing), the adapter against PyAV's defaults on the same
URL, in the same run.

The simulator serves 640x360@10 H.264 with a keyframe every 2 s over RTSPS (GStreamer behind
TLS). Measured per trial from the call that starts the stream until a picture is decoded:

- camgate: ``ArloAdapter.open_live`` (startStream with the Android User-Agent, the URL checked,
  RTSPS with the certificate verified through the RTSP plugin's guard, small probe), then the
  first packet decoded;
- baseline: the same client's ``start_stream``, then ``av.open`` of the same ``rtsps://`` URL
  with FFmpeg's defaults (which verify no certificate), decoding until the first picture.

Each trial ends its Arlo session (idle). The two clients run in random order, each after a random
pause within the GOP, so each joins at its own point of it.

Usage: uv run python bench/arlo_first_frame.py [--trials 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import anyio
import anyio.to_thread
import av
from camgate.models import Camera, GeoPoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import summary, write_result
from camgate_arlo import ArloAdapter
from camgate_arlo.adapter import rtsps_url
from camgate_arlo.testing import ArloSimulator

GOP_S = 2.0
CAMERA = Camera(id="door", adapter="arlo", source="SIMCAM1", owner_id="a", position=GeoPoint(0, 0))


def first_picture_pyav(url: str) -> None:
    """Open ``url`` with FFmpeg's defaults and decode until the first picture."""
    with av.open(url) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size and packet.decode():
                return
    raise RuntimeError("the stream ended before a picture")


async def camgate(adapter: ArloAdapter) -> float:
    t0 = time.monotonic()
    stream = await adapter.open_live(CAMERA, None)  # type: ignore[arg-type]
    try:
        codec = av.CodecContext.create(stream.info.codec, "r")
        if stream.info.extradata:
            codec.extradata = stream.info.extradata
        async for packet in stream:
            if codec.decode(av.Packet(packet.data)):
                return time.monotonic() - t0
    finally:
        await stream.aclose()
    raise RuntimeError("the stream ended before a picture")


async def baseline(adapter: ArloAdapter) -> float:
    client = adapter.client()
    device = await adapter.device(CAMERA.source)
    t0 = time.monotonic()
    url = await client.start_stream(device, adapter.settings.user_agent)
    try:
        await anyio.to_thread.run_sync(first_picture_pyav, rtsps_url(url, ("127.0.0.1",)))
        return time.monotonic() - t0
    finally:
        await client.stop_stream(device)


async def main_async(trials: int) -> None:
    ours: list[float] = []
    theirs: list[float] = []
    with ArloSimulator(cameras=1) as sim:
        adapter = ArloAdapter.from_settings(sim.settings)
        try:
            await adapter.devices()  # logged in and listed before the clock starts
            clients = ["camgate", "pyav"]
            for i in range(trials):
                random.shuffle(clients)
                for client in clients:
                    await anyio.sleep(random.uniform(0, GOP_S))
                    if client == "camgate":
                        ours.append(await camgate(adapter))
                    else:
                        theirs.append(await baseline(adapter))
                print(
                    f"trial {i + 1}/{trials}: camgate {ours[-1]:.3f} s, pyav {theirs[-1]:.3f} s",
                    file=sys.stderr,
                )
        finally:
            await adapter.aclose()
    write_result(
        "arlo_first_frame",
        {
            "what": "startStream -> first decoded picture, simulated Arlo, RTSPS, 640x360@10 H.264",
            "gop_s": GOP_S,
            "camgate": {"arlo_adapter_first_picture": summary(ours)},
            "baseline": {"startstream_then_pyav_defaults_first_picture": summary(theirs)},
            "ratio_median_camgate_over_pyav": round(
                statistics.median(ours) / statistics.median(theirs), 3
            ),
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    anyio.run(main_async, args.trials)


if __name__ == "__main__":
    main()
