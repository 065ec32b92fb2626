#!/usr/bin/env bash
# Build the emulator harness ELFs (host/mcu/elf/) from the board's own libtflm.
#
#   mcu/build.sh [LIBTFLM_CHECKOUT]
#
# LIBTFLM_CHECKOUT is a git clone of github.com/openmv/libtflm (any branch: the pinned commit is
# read from it with `git show`). Without it the script clones github.com/openmv/libtflm into a
# temporary folder (needs internet). Needs Debian's gcc-arm-none-eabi, libnewlib-arm-none-eabi and
# libstdc++-arm-none-eabi-newlib (12.2). The pinned commit is the one OpenMV firmware 4.6.0 to 4.8.1
# links; its .github/workflows/tflm.yml builds tflite-micro a57349f0 for cortex-m7+fp with
# OPTIMIZED_KERNEL_DIR=cmsis_nn and -O2.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
out="$repo/host/mcu/elf"
COMMIT=73eb1aa07416cad0fd64a8405ca9eb5c4e878e87
COMMIT_SHORT=73eb1aa
declare -A SHA256=(
  [release]=815502cfab2dea7710d6448206d8065ad2434666e73c2a9276dd4af645e839e4
  [release_with_logs]=5a0c6417399dbf775646df65d922bb1409afec8905a7ab62242f8b2b9027bda3
)

for tool in arm-none-eabi-gcc arm-none-eabi-g++ arm-none-eabi-strip; do
  command -v "$tool" >/dev/null || { echo "$tool not found: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib" >&2; exit 2; }
done
echo '#include <new>' | arm-none-eabi-g++ -x c++ -fsyntax-only - 2>/dev/null \
  || { echo "C++ headers for arm-none-eabi not found: apt-get install libstdc++-arm-none-eabi-newlib" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
src="${1:-}"
if [ -z "$src" ]; then
  git clone --quiet --filter=blob:none --no-checkout https://github.com/openmv/libtflm "$work/libtflm"
  src="$work/libtflm"
fi
git -C "$src" cat-file -e "$COMMIT_SHORT^{commit}" 2>/dev/null || { echo "$src has no commit $COMMIT_SHORT" >&2; exit 2; }
full="$(git -C "$src" rev-parse "$COMMIT_SHORT^{commit}")"
mkdir -p "$work/tree"
git -C "$src" archive "$full" include | tar -x -C "$work/tree"

FLAGS=(-mcpu=cortex-m7 -mfpu=fpv5-d16 -mfloat-abi=hard -mthumb -O2 -ffunction-sections -fdata-sections)
INC="$work/tree/include"
CXXFLAGS=(-std=c++17 -fno-rtti -fno-exceptions -fno-threadsafe-statics -fno-unwind-tables -fno-asynchronous-unwind-tables
          -DTF_LITE_STATIC_MEMORY -DNDEBUG -I"$INC" -I"$INC/third_party/flatbuffers/include"
          -I"$INC/third_party/gemmlowp" -I"$INC/third_party/ruy" -I"$here")
mkdir -p "$out"
manifest="$out/manifest.json"
{
  echo "{"
  echo "  \"source\": \"https://github.com/openmv/libtflm\","
  echo "  \"commit\": \"$full\","
  echo "  \"tflite_micro_commit\": \"a57349f0bc3bc3ded105238fe2f14c36888d42b0\","
  echo "  \"compiler\": \"$(arm-none-eabi-gcc --version | head -1)\","
  echo "  \"flags\": \"${FLAGS[*]}\","
  echo "  \"variants\": {"
} >"$manifest"
first=1
for variant in release release_with_logs; do
  lib="$work/libtflm-cortex-m7+fp-$variant.a"
  git -C "$src" show "$full:lib/libtflm-cortex-m7+fp-$variant.a" >"$lib"
  sum="$(sha256sum "$lib" | cut -d' ' -f1)"
  want="${SHA256[$variant]}"
  if [ "$sum" != "$want" ]; then
    echo "lib/libtflm-cortex-m7+fp-$variant.a at $COMMIT_SHORT has sha256 $sum, expected $want" >&2; exit 2
  fi
  defs=()
  [ "$variant" = release ] && defs=(-DTF_LITE_STRIP_ERROR_STRINGS)
  arm-none-eabi-g++ "${FLAGS[@]}" "${CXXFLAGS[@]}" "${defs[@]}" -c "$here/harness.cc" -o "$work/harness-$variant.o"
  arm-none-eabi-gcc "${FLAGS[@]}" -I"$here" -c "$here/startup.c" -o "$work/startup.o"
  arm-none-eabi-g++ "${FLAGS[@]}" -nostartfiles -T "$here/harness.ld" -Wl,--gc-sections -Wl,--build-id=none \
    "$work/startup.o" "$work/harness-$variant.o" "$lib" --specs=nano.specs -lm -lc -lgcc -o "$work/harness-$variant.elf"
  arm-none-eabi-strip -o "$out/harness-$variant.elf" "$work/harness-$variant.elf"
  # MCU_KEEP_SYMBOLS=DIR keeps the unstripped ELFs (for addr2line and objdump) in DIR.
  [ -n "${MCU_KEEP_SYMBOLS:-}" ] && mkdir -p "$MCU_KEEP_SYMBOLS" && cp "$work/harness-$variant.elf" "$MCU_KEEP_SYMBOLS/"
  elf_sum="$(sha256sum "$out/harness-$variant.elf" | cut -d' ' -f1)"
  [ $first = 1 ] || echo "    ," >>"$manifest"
  first=0
  {
    echo "    \"$variant\": {\"library\": \"lib/libtflm-cortex-m7+fp-$variant.a\", \"library_sha256\": \"$sum\","
    echo "                 \"library_bytes\": $(stat -c %s "$lib"), \"elf\": \"harness-$variant.elf\", \"elf_sha256\": \"$elf_sum\"}"
  } >>"$manifest"
  echo "harness-$variant.elf: $(stat -c %s "$out/harness-$variant.elf") bytes, from $variant .a sha256 $sum"
done
echo "  }" >>"$manifest"
echo "}" >>"$manifest"
echo "wrote $out (manifest.json)"
