"""Media on PyAV: containers, JPEG stills, privacy masks, clip windows, packet transforms.

Everything works on :class:`~camgate.models.MediaPacket` objects, whatever adapter produced them,
so the edge writes every clip, stream and snapshot the same way after its guard has let the
packets through. See docs/media.md.

- :mod:`camgate.media.mux` — MP4 files, fragmented MP4 / MPEG-TS byte streams, HLS (no
  re-encoding);
- :mod:`camgate.media.jpeg` — a keyframe to a JPEG still;
- :mod:`camgate.media.masks` — privacy masks burnt in (decode, fill, libx264);
- :mod:`camgate.media.transcode` — the re-encoder masks use, and H.265 to H.264 for browsers;
- :mod:`camgate.media.window` — clips cut to a grant's window;
- :mod:`camgate.media.transform` — the per-camera packet transform protocol;
- :mod:`camgate.media.provenance` — match a clip file to the audit record that exported it;
- :mod:`camgate.media.webrtc` — live H.264 from a WebRTC peer (WHEP), no re-encoding
  (``camgate[webrtc]``).
"""

from camgate.media.jpeg import decode_jpeg, encode_jpeg, jpeg_from_packets
from camgate.media.masks import MaskTransform, PlaneMasks, mask_jpeg, rasterise
from camgate.media.mux import FORMATS, Gap, HlsWriter, Mp4Writer, Muxer, sha256_file, stream_bytes
from camgate.media.provenance import clip_tags, find_clip
from camgate.media.transcode import BrowserTranscode, Reencoder
from camgate.media.transform import Chain, PacketTransform, TransformFactory, chain, transformed
from camgate.media.window import Cut, WindowCut

__all__ = [
    "FORMATS",
    "BrowserTranscode",
    "Chain",
    "Cut",
    "Gap",
    "HlsWriter",
    "MaskTransform",
    "Mp4Writer",
    "Muxer",
    "PacketTransform",
    "PlaneMasks",
    "Reencoder",
    "TransformFactory",
    "WindowCut",
    "chain",
    "clip_tags",
    "decode_jpeg",
    "encode_jpeg",
    "find_clip",
    "jpeg_from_packets",
    "mask_jpeg",
    "rasterise",
    "sha256_file",
    "stream_bytes",
    "transformed",
]
