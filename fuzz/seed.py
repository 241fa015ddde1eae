#!/usr/bin/env python3
"""Writes the fuzz seed corpora in fuzz/seeds/<target>/ from the committed fixtures (stdlib only;
run from anywhere: `python3 fuzz/seed.py`). Deterministic: same fixtures, same files.

  flv_tag     windows of fixture tags (the first 160 tags, and 160 tags around each mid-stream
              sequence header and each backward video timestamp), in the layout of
              fuzz_targets/flv_tag.rs. Classification reads only NAL and slice headers, so every
              NAL unit is cut to its first 40 bytes (lengths fixed) and audio/script bodies to 2:
              that keeps each window a few KB.
  avc_config  every distinct sequence header record of fixtures/*.flv and guest/testdata/*.avcc.
  nal_slice   selector 0 (record cabac_64x48, 4-byte lengths) + access units: the testdata
              I-frames whole, and from each fixture its first I-frames, P/B frames and any
              in-band SPS, NAL units cut to 40 bytes.
  render      the four guest/testdata pictures, each with the fixed record (selector = stream) and
              with the record carried in the input (selector | 4), quality 80.
  h264_intra  NAL unit lists ([u16 BE length, NAL]...: SPS, PPS, slices) of the four testdata
              pictures and of the first I-frame of the decoder-coverage fixtures up to 360p.
  h264_diff   selector + one no-op mutation for each base picture; the base pictures (the same
              NAL unit lists) are written to fuzz/h264_diff_base/, which the target embeds.

push_frame's seeds need the guest's FlvToFrames: `cd fuzz && cargo run --release --example
push_frame_seeds` writes them (examples/push_frame_seeds.rs says what they hold); this script
leaves fuzz/seeds/push_frame/ alone.

Old seeds are removed first. libFuzzer adds what it finds to fuzz/corpus/<target>/ (git-ignored).
"""

import hashlib
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "fixtures"))
import flvtool  # noqa: E402

TESTDATA = os.path.join(ROOT, "guest", "testdata")
STREAMS = ["cabac_64x48", "crop_70x38", "full709_96x64", "slices_128x96"]
NAL_KEEP = 40
WINDOW = 160


def testdata(name):
    with open(os.path.join(TESTDATA, name), "rb") as f:
        return f.read()


def cut_nals(payload, length_size):
    """An access unit with every NAL unit cut to NAL_KEEP bytes, lengths fixed."""
    try:
        nals = flvtool.split_nals(payload, length_size)
    except ValueError:
        return payload[:NAL_KEEP]
    return flvtool.join_nals([n[:NAL_KEEP] for n in nals], length_size)


def slim_body(tag, length_size):
    """The tag body with NAL units cut (video) or the body cut to 2 bytes (others)."""
    d = tag.data
    if tag.type != flvtool.TAG_VIDEO:
        return d[:2]
    if len(d) > 5 and d[0] & 0x0F == flvtool.CODEC_AVC and d[1] == flvtool.AVC_NALU:
        return d[:5] + cut_nals(d[5:], length_size)
    return d


def encode_tags(tags):
    """Tags in the flv_tag input layout: settings 0 (interval 1 s, sequence keys), then each tag
    with an absolute timestamp for the first and after any backward step, else a u16 delta."""
    out = bytearray([0])
    length_size = 4
    prev = None
    for t in tags:
        if t.type == flvtool.TAG_VIDEO and len(t.data) > 9 and t.data[1] == 0:
            length_size = flvtool.nal_length_size(t.data)
        body = slim_body(t, length_size)
        kind = {9: 0, 8: 1, 18: 2}.get(t.type, 3)
        delta = None if prev is None else t.timestamp - prev
        absolute = delta is None or not 0 <= delta <= 0xFFFF
        out.append(kind | (4 if absolute else 0))
        if kind == 3:
            out.append(t.type)
        out += struct.pack(">I", t.timestamp) if absolute else struct.pack(">H", delta)
        out += struct.pack(">H", len(body)) + body
        prev = t.timestamp
    return bytes(out)


def flv_tag_seeds(flv):
    tags = flv.tags
    starts = {0}
    last_video = None
    for i, t in enumerate(tags):
        if t.type != flvtool.TAG_VIDEO or len(t.data) < 2:
            continue
        if i > 5 and t.data[1] == flvtool.AVC_SEQ_HEADER:
            starts.add(max(0, i - 10))
        if last_video is not None and t.timestamp < last_video:
            starts.add(max(0, i - 40))
        last_video = t.timestamp
    return [encode_tags(tags[s:s + WINDOW]) for s in sorted(starts)]


def nal_slice_seeds(flv):
    seeds, length_size = [], 4
    wanted = {"I": 2, "P": 2, "B": 1, "SPS": 1}
    for t in flv.tags:
        if t.type != flvtool.TAG_VIDEO or len(t.data) < 5 or t.data[0] & 0x0F != 7:
            continue
        if t.data[1] == flvtool.AVC_SEQ_HEADER:
            length_size = flvtool.nal_length_size(t.data)
            continue
        if t.data[1] != flvtool.AVC_NALU or length_size != 4:
            continue
        nals = flvtool.split_nals(t.data[5:], length_size)
        types = [n[0] & 0x1F for n in nals if n]
        slices = [flvtool.slice_type(n) % 5 for n in nals if n and n[0] & 0x1F in (1, 5)]
        kind = "SPS" if 7 in types else "I" if flvtool.is_i_frame(slices) else (
            "B" if 1 in slices else "P")
        if wanted.get(kind, 0) > 0:
            wanted[kind] -= 1
            seeds.append(b"\0" + cut_nals(t.data[5:], 4))
    return seeds


def config_nals(record):
    """SPS and PPS NAL units of an AVCDecoderConfigurationRecord."""
    out, pos = [], 5
    for mask in (0x1F, 0xFF):
        count = record[pos] & mask
        pos += 1
        for _ in range(count):
            n = struct.unpack(">H", record[pos:pos + 2])[0]
            out.append(record[pos + 2:pos + 2 + n])
            pos += 2 + n
    return out


def nal_list(nals):
    return b"".join(struct.pack(">H", len(n)) + n for n in nals)


def first_iframe_nals(flv):
    """SPS, PPS and slices of the first I-frame of a fixture (4-byte NAL lengths)."""
    record = None
    for t in flv.tags:
        if t.type != flvtool.TAG_VIDEO or len(t.data) < 5:
            continue
        if t.data[1] == flvtool.AVC_SEQ_HEADER:
            record = t.data[5:]
        elif t.data[1] == flvtool.AVC_NALU and record is not None:
            nals = flvtool.split_nals(t.data[5:], 4)
            slices = [flvtool.slice_type(n) % 5 for n in nals if n and n[0] & 0x1F in (1, 5)]
            if flvtool.is_i_frame(slices):
                return config_nals(record) + [n for n in nals if n and n[0] & 0x1F in (1, 5)]
    return None


# Decoder-coverage fixtures small enough to fuzz: first I-frames of these.
H264_FIXTURES = ["pcm_cabac", "pcm_cavlc", "cavlc_8x8", "cqm_jvt", "gray_400", "fake_interlaced",
                 "mbaff_tff", "baseline_360p"]
# Base pictures of h264_diff (the order is the target's selector).
H264_DIFF_BASE = STREAMS + ["pcm_cabac", "pcm_cavlc"]


def write(target, seeds):
    d = os.path.join(ROOT, "fuzz", "seeds", target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for s in seeds:
        with open(os.path.join(d, hashlib.sha1(s).hexdigest()), "wb") as f:
            f.write(s)
    total = sum(len(s) for s in set(seeds))
    print(f"{target}: {len(set(seeds))} seeds, {total} bytes")


def main():
    fixtures = sorted(f for f in os.listdir(os.path.join(ROOT, "fixtures")) if f.endswith(".flv"))
    flv_tag, avc_config, nal_slice, render = [], [], [], []
    for name in STREAMS:
        avcc, au = testdata(name + ".avcc"), testdata(name + ".au")
        avc_config.append(avcc)
        nal_slice.append(b"\0" + au)
        i = STREAMS.index(name)
        render.append(bytes([i, 80]) + au)
        render.append(bytes([i | 4, 80, len(avcc)]) + avcc + au)
    # The decoder-coverage fixtures (fixtures/README.md) feed h264_intra/h264_diff only, which
    # keeps the other seed sets as they were (and slice_per_mb_1080p's 8160-NAL tags out).
    decoder_only = {n + ".flv" for n in H264_FIXTURES + ["slices68_1080p", "slice_per_mb_1080p",
                                                        "mbaff_bff"]} - {"baseline_360p.flv"}
    for f in fixtures:
        if f in decoder_only:
            continue
        flv = flvtool.read_flv(os.path.join(ROOT, "fixtures", f))
        flv_tag += flv_tag_seeds(flv)
        avc_config += [t.data[5:] for t in flv.tags
                       if t.type == flvtool.TAG_VIDEO and t.data[1:2] == b"\0"]
        nal_slice += nal_slice_seeds(flv)
    write("flv_tag", flv_tag)
    write("avc_config", avc_config)
    write("nal_slice", nal_slice)
    write("render", render)

    lists = {}
    for name in STREAMS:
        au = testdata(name + ".au")
        lists[name] = config_nals(testdata(name + ".avcc")) + flvtool.split_nals(au, 4)
    for name in H264_FIXTURES:
        lists[name] = first_iframe_nals(
            flvtool.read_flv(os.path.join(ROOT, "fixtures", name + ".flv")))
    write("h264_intra", [nal_list(n) for n in lists.values()])
    base = os.path.join(ROOT, "fuzz", "h264_diff_base")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    for name in H264_DIFF_BASE:
        with open(os.path.join(base, name + ".nals"), "wb") as f:
            f.write(nal_list(lists[name]))
    write("h264_diff", [bytes([i, 0, 40, 0]) for i in range(len(H264_DIFF_BASE))])


if __name__ == "__main__":
    main()
