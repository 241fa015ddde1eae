#!/usr/bin/python3
"""A real RTSP server for the livesnap tests: GStreamer's gst-rtsp-server playing MPEG-TS files.

Run with Debian's /usr/bin/python3 (python3-gi, gir1.2-gst-rtsp-server-1.0; see .ci/run), not a
pyenv/venv python without `gi`:

    /usr/bin/python3 host/tests/common/rtsp_server.py --port 0 \
        --mount /cam=/tmp/high_720p.ts:h264:inband [--mount ...] \
        [--user U --password P] [--loop] [--aggregate zero-latency|none|max] \
        [--timestamp-offset N] [--seqnum-offset N] [--exit-on-stdin-eof]

Once listening it prints exactly one line, `READY rtsp://127.0.0.1:PORT`, to stdout (flushed);
`--port 0` takes a free port from the kernel and PORT is the one it got. Mounts are then at
rtsp://127.0.0.1:PORT/PATH. Errors go to stderr with a non-zero exit before READY. SIGTERM and
SIGINT stop it (exit 0). Everything listens on 127.0.0.1 only (the RTSP socket and, for RTP over
UDP, the server's RTP/RTCP ports).

--mount PATH=FILE:CODEC:PARAMS
    FILE   an MPEG-TS file with one H.264 or H.265 video stream (the tests remux the FLV
           fixtures without re-encoding: `ffmpeg9 -i X.flv -c copy -an -f mpegts X.ts`).
           Other streams (audio) are ignored: the SDP has exactly one video track (pt 96).
    CODEC  h264 | h265
    PARAMS inband  parameter sets (SPS/PPS, for H.265 VPS/SPS/PPS) in-band before every IDR
                   (h264parse/h265parse config-interval=-1, byte-stream). rtph26xpay also copies
                   them into the SDP (sprop-parameter-sets / sprop-vps,sps,pps), as most
                   cameras do.
           sdp     parameter sets only in the SDP, none in the RTP payload: the parser outputs
                   avc / hvc1 (parameter sets moved to codec_data), the ones left in the access
                   units are removed here, and the payloader runs with config-interval=0.
           inband-only  as inband, but sprop-* is removed from the SDP: the client can only
                   learn the parameter sets from the stream.

The coded NAL units are never re-encoded or rewritten: the access units are read once at start
(tsdemux ! h26xparse ! appsink, as fast as possible), kept in memory, and each media plays them
from an appsrc straight into the payloader (no parser in between).

Playback is a live camera at the file's rate: the server's sinks sync to the pipeline clock. The
media of a mount is shared (`set_shared(True)`): it starts at the first client's PLAY from the
file's first access unit (an IDR) and a client that joins while another one is playing joins
mid-stream (mid-GOP). When the last client leaves, the media is dropped; the next client starts
a new one from the beginning. Without --loop the file plays once and the stream ends (EOS; the
server sends RTCP BYE, ffmpeg then ends with EOF); with --loop it plays forever, timestamps
continuing across the wrap (period = the file's duration in decode order).

RTP: payload type 96, clock 90 kHz, timestamp = offset + PTS * 90000 with the file's first
dts at 0 (so the first packet carries offset + the first frame's composition delay, e.g. +6030
for 67 ms with B-frames, and timestamps go back and forth with B-frames); the offset and the
first sequence number are random unless --timestamp-offset / --seqnum-offset are given; the PLAY
response's RTP-Info has both (rtptime = the first packet's timestamp for the first client).
Packetization: by default (GStreamer 1.22's aggregate-mode none) every NAL unit is sent on its
own, as a single NAL unit packet or fragmented (FU-A, H.264 type 28 / FU, H.265 type 49);
`--aggregate zero-latency|max` bundles the small NAL units of an access unit into STAP-A (type
24) / AP (type 48) packets. The access unit delimiters of the TS (H.264 type 9 / H.265 type 35,
added by ffmpeg's MPEG-TS muxer) are sent too. RTP goes over TCP (interleaved) or UDP unicast,
as the client asks; each access unit's last packet has the marker bit.

--launch PATH=PIPELINE
    A mount served from a gst-launch pipeline (payloaders named pay0, pay1, ...), for cameras
    livesnap must refuse: e.g. `/mjpeg=( videotestsrc is-live=true ! jpegenc ! rtpjpegpay
    name=pay0 )` or an audio-only `( audiotestsrc is-live=true ! mulawenc ! rtppcmupay name=pay0 )`.

--user U --password P
    Digest authentication (RFC 2617, MD5): only U with P may DESCRIBE/SETUP/PLAY, everyone else
    gets 401 Unauthorized.
"""

import argparse
import os
import random
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtsp, GstRtspServer  # noqa: E402,F401

# NAL unit types of the parameter sets (kept in-band in `inband`, removed in `sdp` mode) and of
# the random access points (IDR; H.265 BLA/IDR/CRA) that must be preceded by them in-band.
PARAM_NALS = {"h264": (7, 8), "h265": (32, 33, 34)}
IRAP_NALS = {"h264": range(5, 6), "h265": range(16, 22)}


def nal_type(codec, header):
    return header & 0x1F if codec == "h264" else (header >> 1) & 0x3F


def split_annexb(data):
    """The NAL units of an Annex B byte string (start codes and trailing zero bytes removed)."""
    nals = []
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    for k, st in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        nal = data[st:end].rstrip(b"\x00")
        if nal:
            nals.append(nal)
    return nals


class Track:
    """The access units of one TS file, read once, with the caps for the appsrc.

    The NAL units are tsdemux's, byte for byte (one PES = one access unit in ffmpeg's TS; ffmpeg's
    muxer has put an access unit delimiter in front and the parameter sets before every IDR/IRAP).
    h264parse/h265parse only give the caps (codec_data = avcC/hvcC, size, framerate): they are not
    in the data path, because they rewrite access units (e.g. drop the first one's AUD and SEI).
    """

    def __init__(self, path, codec, params):
        self.codec = codec
        self.params = params
        self.aus = []  # (pts_ns, dts_ns, duration_ns, delta_unit, bytes)
        self.caps = self._caps(path)
        self._read(path)

    def _pull(self, path, desc, limit=None):
        pipe = Gst.parse_launch(desc)
        pipe.get_by_name("file").set_property("location", path)
        sink = pipe.get_by_name("sink")
        bus = pipe.get_bus()
        pads_done = []
        pipe.get_by_name("d").connect("no-more-pads", lambda _d: pads_done.append(True))
        first = pipe.get_by_name("first").get_static_pad("sink")
        pipe.set_state(Gst.State.PLAYING)
        samples = []
        try:
            while limit is None or len(samples) < limit:
                sample = sink.try_pull_sample(Gst.SECOND // 10)
                if sample is not None:
                    samples.append(sample)
                    continue
                if sink.is_eos():
                    break
                if pads_done and not first.is_linked():
                    raise RuntimeError(f"{path}: no {self.codec} stream in the TS")
                msg = bus.pop_filtered(Gst.MessageType.ERROR)
                if msg is not None:
                    err, dbg = msg.parse_error()
                    raise RuntimeError(f"{path}: {err.message} ({dbg})")
        finally:
            pipe.set_state(Gst.State.NULL)
        if not samples:
            raise RuntimeError(f"{path}: no {self.codec} access units (wrong codec?)")
        return samples

    def _caps(self, path):
        parser, mime, fmt = (("h264parse", "video/x-h264", "avc") if self.codec == "h264"
                             else ("h265parse", "video/x-h265", "hvc1"))
        desc = (f"filesrc name=file ! tsdemux name=d d. ! {parser} name=first ! "
                f"{mime},stream-format={fmt},alignment=au ! "
                "appsink name=sink sync=false max-buffers=0")
        caps = self._pull(path, desc, limit=1)[0].get_caps()
        if self.params == "sdp":
            return caps
        s = caps.get_structure(0).copy()  # (PyGObject: edit a copy, build new caps)
        s.set_value("stream-format", "byte-stream")
        s.remove_field("codec_data")
        out = Gst.Caps.new_empty()
        out.append_structure(s)
        return out

    def _read(self, path):
        mime = "video/x-h264" if self.codec == "h264" else "video/x-h265"
        desc = (f"filesrc name=file ! tsdemux name=d d. ! capsfilter name=first caps={mime} ! "
                "appsink name=sink sync=false max-buffers=0")
        params = {}
        for sample in self._pull(path, desc):
            buf = sample.get_buffer()
            nals = split_annexb(buf.extract_dup(0, buf.get_size()))
            types = [nal_type(self.codec, n[0]) for n in nals]
            irap = any(t in IRAP_NALS[self.codec] for t in types)
            for t, n in zip(types, nals):
                if t in PARAM_NALS[self.codec]:
                    params[t] = n
            if self.params == "sdp":
                nals = [n for t, n in zip(types, nals) if t not in PARAM_NALS[self.codec]]
                data = b"".join(len(n).to_bytes(4, "big") + n for n in nals)
            else:
                if irap and not all(t in types for t in PARAM_NALS[self.codec]):
                    # config-interval=-1: parameter sets before every IRAP (after the AUD).
                    at = 1 if types and types[0] in (9, 35) else 0
                    nals[at:at] = [params[t] for t in PARAM_NALS[self.codec] if t in params]
                data = b"".join(b"\x00\x00\x00\x01" + n for n in nals)
            self.aus.append((buf.pts, buf.dts, buf.duration, not irap, data))
        # Rebase: the first dts (or pts) is 0; the period for --loop, in decode order.
        def t(au):
            return au[1] if au[1] != Gst.CLOCK_TIME_NONE else au[0]
        self.base = min(t(a) for a in self.aus)
        frame = (t(self.aus[-1]) - t(self.aus[0])) // max(1, len(self.aus) - 1)
        self.period = t(self.aus[-1]) - self.base + frame


class Factory(GstRtspServer.RTSPMediaFactory):
    def __init__(self, track, loop, aggregate, ts_offset, seq_offset):
        super().__init__()
        self.track = track
        self.loop = loop
        self.aggregate = aggregate
        self.ts_offset = ts_offset
        self.seq_offset = seq_offset
        self.set_shared(True)
        self.set_protocols(GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP)
        self.set_eos_shutdown(False)

    def do_create_element(self, url):
        pay = "rtph264pay" if self.track.codec == "h264" else "rtph265pay"
        extra = ""
        if self.aggregate:
            mode = "max-stap" if self.aggregate == "max" and self.track.codec == "h264" else \
                self.aggregate
            extra += f" aggregate-mode={mode}"
        if self.ts_offset is not None:
            extra += f" timestamp-offset={self.ts_offset}"
        if self.seq_offset is not None:
            extra += f" seqnum-offset={self.seq_offset}"
        desc = (f"( appsrc name=src is-live=false format=time max-bytes=2000000 ! "
                f"{pay} name=pay0 pt=96 config-interval=0{extra} )")
        return Gst.parse_launch(desc)

    def do_configure(self, media):
        GstRtspServer.RTSPMediaFactory.do_configure(self, media)
        src = media.get_element().get_by_name("src")
        src.set_property("caps", self.track.caps)
        state = {"i": 0, "lap": 0}
        track = self.track
        media._livesnap_state = state  # keep alive with the media

        def need_data(appsrc, _length):
            while True:
                if state["i"] >= len(track.aus):
                    if not self.loop:
                        appsrc.end_of_stream()
                        return
                    state["i"] = 0
                    state["lap"] += 1
                pts, dts, dur, delta, data = track.aus[state["i"]]
                state["i"] += 1
                off = state["lap"] * track.period - track.base
                buf = Gst.Buffer.new_wrapped(data)
                buf.pts = pts + off if pts != Gst.CLOCK_TIME_NONE else Gst.CLOCK_TIME_NONE
                buf.dts = dts + off if dts != Gst.CLOCK_TIME_NONE else Gst.CLOCK_TIME_NONE
                buf.duration = dur
                if delta:
                    buf.set_flags(Gst.BufferFlags.DELTA_UNIT)
                if appsrc.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                    return
                # One access unit per call keeps appsrc's queue short; need-data comes again.
                return

        src.connect("need-data", need_data)
        if track.params == "inband-only":
            pay = media.get_element().get_by_name("pay0")
            pay.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, drop_sprop)


def drop_sprop(pad, info):
    """Remove sprop-* from the payloader's caps, so the SDP has no parameter sets."""
    ev = info.get_event()
    if ev.type != Gst.EventType.CAPS:
        return Gst.PadProbeReturn.OK
    s = ev.parse_caps().get_structure(0).copy()
    sprop = [f for f in ("sprop-parameter-sets", "sprop-vps", "sprop-sps", "sprop-pps")
             if s.has_field(f)]
    if not sprop:
        return Gst.PadProbeReturn.OK
    for f in sprop:
        s.remove_field(f)
    caps = Gst.Caps.new_empty()
    caps.append_structure(s)
    # The event cannot be replaced in place from Python: push the new one (it passes this probe
    # again, without sprop-*) and drop this one.
    pad.push_event(Gst.Event.new_caps(caps))
    return Gst.PadProbeReturn.DROP


def parse_mount(text):
    try:
        path, rest = text.split("=", 1)
        file, codec, params = rest.rsplit(":", 2)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--mount {text!r}: want PATH=FILE:CODEC:PARAMS")
    if not path.startswith("/"):
        path = "/" + path
    if codec not in ("h264", "h265"):
        raise argparse.ArgumentTypeError(f"--mount {text!r}: CODEC is h264 or h265")
    if params not in ("inband", "sdp", "inband-only"):
        raise argparse.ArgumentTypeError(f"--mount {text!r}: PARAMS is inband, sdp or inband-only")
    if not os.path.isfile(file):
        raise argparse.ArgumentTypeError(f"--mount {text!r}: no file {file}")
    return path, file, codec, params


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any free)")
    ap.add_argument("--mount", type=parse_mount, action="append", default=[],
                    metavar="PATH=FILE:CODEC:PARAMS")
    ap.add_argument("--launch", action="append", default=[], metavar="PATH=PIPELINE",
                    help="a mount served from a gst-launch pipeline whose payloaders are pay0, "
                         "pay1, ... (e.g. an MJPEG or audio-only camera)")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--loop", action="store_true", help="play the files forever")
    ap.add_argument("--aggregate", choices=("zero-latency", "none", "max"),
                    help="rtph26xpay aggregate-mode (default: GStreamer 1.22's, none)")
    ap.add_argument("--timestamp-offset", type=int, help="first RTP timestamp (default random)")
    ap.add_argument("--seqnum-offset", type=int, help="first RTP sequence number (default random)")
    ap.add_argument("--exit-on-stdin-eof", action="store_true",
                    help="exit when stdin is closed (the test process died)")
    args = ap.parse_args()
    if not args.mount and not args.launch:
        ap.error("give at least one --mount or --launch")
    if (args.user is None) != (args.password is None):
        ap.error("--user and --password go together")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    auth = None
    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", args.user)
        auth.add_digest(args.user, args.password, token)
        server.set_auth(auth)

    # UDP unicast: the server's RTP/RTCP port pairs on 127.0.0.1 too (without a pool it binds
    # them on the wildcard addresses). 200 pairs from a random even base below Linux's ephemeral
    # range; a port that is taken (another server, a client) is skipped by gst-rtsp-server.
    pool = GstRtspServer.RTSPAddressPool()
    base = random.randrange(20000, 32000 - 400, 2)
    pool.add_range("127.0.0.1", "127.0.0.1", base, base + 399, 0)

    mounts = server.get_mount_points()
    for path, file, codec, params in args.mount:
        track = Track(file, codec, params)
        f = Factory(track, args.loop, args.aggregate, args.timestamp_offset, args.seqnum_offset)
        f.set_address_pool(pool)
        if auth is not None:
            f.add_role_from_structure(Gst.Structure.new_from_string(
                f"{args.user}, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"))
        mounts.add_factory(path, f)

    for spec in args.launch:
        path, _, pipeline = spec.partition("=")
        f = GstRtspServer.RTSPMediaFactory()
        f.set_launch(pipeline)
        f.set_shared(True)
        f.set_address_pool(pool)
        if auth is not None:
            f.add_role_from_structure(Gst.Structure.new_from_string(
                f"{args.user}, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"))
        mounts.add_factory(path if path.startswith("/") else "/" + path, f)

    if server.attach(None) == 0:
        print(f"rtsp_server.py: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    port = server.get_bound_port()

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda: (loop.quit(), False)[1])
    if args.exit_on_stdin_eof:
        def stdin_closed(fd, cond):
            if cond & (GLib.IOCondition.HUP | GLib.IOCondition.ERR) or not os.read(fd, 4096):
                loop.quit()
                return False
            return True
        GLib.unix_fd_add_full(GLib.PRIORITY_DEFAULT, 0,
                              GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
                              stdin_closed)

    print(f"READY rtsp://127.0.0.1:{port}", flush=True)
    loop.run()
    # Close the client connections and their media, then leave at once: the interpreter's and
    # GStreamer's own teardown would take another second or so, for nothing.
    server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
