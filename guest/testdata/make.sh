#!/usr/bin/env bash
# Makes the render test streams in guest/testdata/ (run from anywhere; needs ffmpeg with libx264
# and python3). Each stream is ONE x264 IDR picture, stored the way an FLV carries it:
#
#   NAME.avcc  AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.2.4.1): the body of an FLV AVC
#              sequence header after its 5-byte tag header
#   NAME.au    the picture's NAL units (x264's SEI + slices), each with a 4-byte big-endian length:
#              the body of an FLV AVC NALU tag after its 5-byte tag header
#   NAME.md5   MD5 of ffmpeg's decode of that picture as raw planar 4:2:0 in the decoder's own
#              pixel format (no -pix_fmt: no conversion), then "WxH" on the second line
#
# Streams (all 8-bit 4:2:0, content from lavfi test sources):
#   cabac_64x48    High, CABAC, no VUI colour info -> BT.601 limited range (the default)
#   crop_70x38     Baseline, CAVLC, coded 80x48 cropped to 70x38, BT.601 (smpte170m) full range
#   full709_96x64  Main, CABAC, BT.709 full range
#   slices_128x96  High, 4 slices per picture, BT.709 limited range
#
# With `--bench DIR` it instead writes a 1920x1080 and a 1280x720 picture (bench_1080.{avcc,au},
# bench_720.{avcc,au}) to DIR for the ignored timing helper in render.rs; those are not stored.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Annex B (.h264) -> NAME.avcc + NAME.au. The first SPS and PPS go into the record; every other
# NAL of the first picture goes into the access unit.
to_flv_bodies() {
    python3 - "$1" "$2" <<'EOF'
import struct, sys
data = open(sys.argv[1], 'rb').read()
out = sys.argv[2]
# Split on 00 00 01 start codes; a 4-byte start code leaves a trailing zero on the previous NAL.
nals, i = [], data.find(b'\x00\x00\x01')
while i >= 0:
    j = data.find(b'\x00\x00\x01', i + 3)
    nal = data[i + 3:j if j >= 0 else len(data)]
    nals.append(nal.rstrip(b'\x00') if j >= 0 else nal)
    i = j
sps = next(n for n in nals if n[0] & 0x1f == 7)
pps = next(n for n in nals if n[0] & 0x1f == 8)
au = [n for n in nals if n[0] & 0x1f not in (7, 8)]
rec = bytes([1, sps[1], sps[2], sps[3], 0xff, 0xe1]) + struct.pack('>H', len(sps)) + sps
rec += bytes([1]) + struct.pack('>H', len(pps)) + pps
if sps[1] in (100, 110, 122, 144):
    # High profiles: chroma_format 4:2:0, 8-bit luma and chroma, no SPS extensions (§5.2.4.1.1)
    rec += bytes([0xfc | 1, 0xf8, 0xf8, 0])
open(out + '.avcc', 'wb').write(rec)
open(out + '.au', 'wb').write(b''.join(struct.pack('>I', len(n)) + n for n in au))
EOF
}

# make NAME OUTDIR SOURCE VF X264_PARAMS [extra ffmpeg output options...]
make() {
    local name="$1" dir="$2" src="$3" vf="$4" params="$5"
    shift 5
    ffmpeg -nostdin -loglevel error -y -threads 1 -f lavfi -i "$src" -frames:v 1 -vf "$vf" \
        -c:v libx264 -threads 1 -x264-params "keyint=1:$params" "$@" -f h264 "$tmp/$name.h264"
    to_flv_bodies "$tmp/$name.h264" "$dir/$name"
}

reference_md5() {
    local name="$1"
    local md5 size
    md5="$(ffmpeg -nostdin -loglevel error -threads 1 -i "$tmp/$name.h264" -frames:v 1 -f md5 - |
        sed 's/^MD5=//')"
    size="$(ffprobe -v error -select_streams v:0 -show_entries stream=width,height -of csv=s=x:p=0 \
        "$tmp/$name.h264")"
    printf '%s\n%s\n' "$md5" "$size" >"$here/$name.md5"
}

if [[ "${1:-}" == "--bench" ]]; then
    out="${2:?usage: make.sh --bench DIR}"
    mkdir -p "$out"
    # Light noise makes them cost about what a high-quality camera keyframe does (~350 KB at 1080p).
    make bench_1080 "$out" "testsrc2=s=1920x1080:r=25" "noise=alls=2,format=yuv420p" "" \
        -profile:v high -crf 20
    make bench_720 "$out" "testsrc2=s=1280x720:r=25" "noise=alls=2,format=yuv420p" "" \
        -profile:v high -crf 20
    exit 0
fi

make cabac_64x48 "$here" "testsrc2=s=64x48:r=25" "format=yuv420p" "" -profile:v high -crf 18
reference_md5 cabac_64x48

# 70x38 is not a multiple of 16: x264 codes 80x48 and signals a crop of 10 right, 10 bottom.
make crop_70x38 "$here" "testsrc2=s=70x38:r=25" \
    "scale=out_range=full:out_color_matrix=bt601,format=yuv420p" "" \
    -profile:v baseline -crf 18 -color_range pc -colorspace smpte170m \
    -color_primaries smpte170m -color_trc smpte170m
reference_md5 crop_70x38

make full709_96x64 "$here" "testsrc2=s=96x64:r=25" \
    "scale=out_range=full:out_color_matrix=bt709,format=yuv420p" "" \
    -profile:v main -crf 18 -color_range pc -colorspace bt709 -color_primaries bt709 \
    -color_trc bt709
reference_md5 full709_96x64

make slices_128x96 "$here" "testsrc2=s=128x96:r=25" \
    "scale=out_range=tv:out_color_matrix=bt709,format=yuv420p" "slices=4" \
    -profile:v high -crf 18 -color_range tv -colorspace bt709 -color_primaries bt709 \
    -color_trc bt709
reference_md5 slices_128x96
