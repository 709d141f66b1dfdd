#!/usr/bin/env bash
# Lints (rustfmt, clippy -D warnings) and builds the ESP32-C3 firmware (crates/firmware/esp32c3:
# bare-metal esp-hal, RISC-V) in release, checks that it linked into a RISC-V executable, and checks its flash and static RAM use
# against crates/firmware/esp32c3/size-budget.toml. Run from anywhere: `bash scripts/firmware-c3.sh`.
#
#   flash      = every allocated section with contents (PROGBITS): code, read-only data, and the
#                initial values of RAM data and RAM code, i.e. what the app image holds.
#   static RAM = every allocated section placed in the C3's internal RAM (IRAM 0x4037C000-0x403E0000,
#                DRAM 0x3FC80000-0x3FCE0000, RTC 0x50000000-0x50002000): RAM code, data, bss.
#                Not counted: `.stack` and `.dram2_uninit` (whatever RAM is left, handed to the
#                stack and the heap) and `.rwdata_dummy` (the DRAM alias of the RAM code, which
#                is already counted once as IRAM).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
crate="$root/crates/firmware/esp32c3"
target=riscv32imc-unknown-none-elf
cd "$crate"

# The toolchain is pinned in rust-toolchain.toml; rustup installs it on first use. The target
# is added explicitly (idempotent) so the script does not depend on rustup's auto-install.
toolchain="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
rustup toolchain install --profile minimal "$toolchain" >/dev/null 2>&1 || true
rustup target add --toolchain "$toolchain" "$target"
rustup component add --toolchain "$toolchain" clippy rustfmt

command -v readelf >/dev/null || { echo "readelf not found: install binutils" >&2; exit 1; }

# The host workspace's fmt/clippy steps do not reach this crate (it is excluded there).
cargo fmt --check
cargo clippy --release --locked -- -D warnings
cargo build --release --locked
elf="target/$target/release/espsim-esp32c3"
[ -f "$elf" ] || { echo "no ELF at $elf: the link did not produce the firmware" >&2; exit 1; }

header="$(readelf -hW "$elf")"
grep -Eq 'Class: +ELF32' <<<"$header" || { echo "$elf is not ELF32" >&2; exit 1; }
grep -Eq 'Machine: +RISC-V' <<<"$header" || { echo "$elf is not a RISC-V ELF" >&2; exit 1; }
grep -Eq 'Type: +EXEC' <<<"$header" || { echo "$elf is not an executable" >&2; exit 1; }
entry="$(sed -n 's/.*Entry point address: *//p' <<<"$header")"
[ "$((entry))" -ne 0 ] || { echo "$elf has no entry point" >&2; exit 1; }

flash=0
ram=0
# readelf -SW: "[Nr] Name Type Addr Off Size ES Flg ..." (the "[ n]" prefix may hold a space).
while read -r name type addr size flags; do
  [[ "$flags" == *A* ]] || continue
  size=$((16#$size)); addr=$((16#$addr))
  [ "$type" = PROGBITS ] && flash=$((flash + size))
  case "$name" in .stack|.dram2_uninit|.rwdata_dummy) continue ;; esac
  if (( (addr >= 0x4037C000 && addr < 0x403E0000) || (addr >= 0x3FC80000 && addr < 0x3FCE0000) \
        || (addr >= 0x50000000 && addr < 0x50002000) )); then
    ram=$((ram + size))
  fi
done < <(readelf -SW "$elf" | sed -n 's/^ *\[ *[0-9]*\] //p' | awk '{print $1, $2, $3, $5, $7}')

budget="$crate/size-budget.toml"
flash_budget="$(sed -n 's/^flash_bytes *= *\([0-9_]*\).*/\1/p' "$budget" | tr -d _)"
ram_budget="$(sed -n 's/^ram_bytes *= *\([0-9_]*\).*/\1/p' "$budget" | tr -d _)"
[ -n "$flash_budget" ] && [ -n "$ram_budget" ] || { echo "$budget needs flash_bytes and ram_bytes" >&2; exit 1; }

printf 'espsim-esp32c3 (%s): flash %d / %d bytes, static RAM %d / %d bytes\n' \
  "$target" "$flash" "$flash_budget" "$ram" "$ram_budget"
status=0
if (( flash > flash_budget )); then
  echo "flash use $flash bytes is over the budget of $flash_budget bytes ($budget)" >&2; status=1
fi
if (( ram > ram_budget )); then
  echo "static RAM use $ram bytes is over the budget of $ram_budget bytes ($budget)" >&2; status=1
fi
exit "$status"
