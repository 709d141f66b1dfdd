# espsim: an emulated ESP32 softAP (captive DNS, connectivity checks, WebSocket device).
#
# Users:  docker build -t espsim .                  (compiles in a rust:1-bookworm builder stage)
# CI:     cargo build (static, see scripts/container-test.sh), copy the binary to dist/espsim, then
#         DOCKER_BUILDKIT=1 docker build --build-arg BIN_FROM=prebuilt --target runtime -t espsim .
#         BuildKit skips the builder stage entirely, so no base image is pulled.
# The runtime image is FROM scratch: one static binary, nothing else.

ARG BIN_FROM=build

# --- builder: a static (static-pie, glibc) binary for the build platform ------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Built for size (opt-level s, one codegen unit): 15.7 MB instead of 28.9 MB with the release
# profile's opt-level 3, at no cost that matters to one app (BENCHMARKS.md measures opt-level 3).
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=s \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
# The builder's own target (x86_64 or aarch64): an explicit --target is what makes crt-static
# apply to the binary only, not to build scripts and proc macros.
RUN target="$(rustc --print host-tuple)" \
 && cargo build --release --locked -p espsim --target "$target" \
 && install -D -m 0755 "target/$target/release/espsim" /out/espsim

# --- prebuilt: the same binary built on the host and copied to dist/espsim -------------------
FROM scratch AS prebuilt
COPY dist/espsim /out/espsim

# --- whichever of the two BIN_FROM names --------------------------------------------------------
# hadolint ignore=DL3006
FROM ${BIN_FROM} AS bin

# --- runtime ------------------------------------------------------------------------------------
FROM scratch AS runtime
LABEL org.opencontainers.image.title="espsim" \
      org.opencontainers.image.description="Emulated ESP32 softAP: captive DNS, OS connectivity checks, WebSocket device, fault injection" \
      org.opencontainers.image.source="https://github.com/espsim/espsim" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY --from=bin /out/espsim /espsim
# The device's ports (docs/guides/docker.md): HTTP/WebSocket, DNS (udp+tcp), HTTPS/wss (with --tls), control API.
EXPOSE 80/tcp 53/udp 53/tcp 443/tcp 8475/tcp
# Every flag has a default for the container: the softAP address, the standard ports on all interfaces.
ENTRYPOINT ["/espsim"]
# The control API stays on the container's own loopback (not published, not reachable by the
# host's browser), so the HEALTHCHECK below may use it without a token; compose gives one.
CMD ["run", "--http", "0.0.0.0:80", "--dns", "0.0.0.0:53", "--device-ip", "192.168.4.1", "--control-insecure"]
# Health: the process serves its control API (loopback inside the container, or the address and
# ESPSIM_CONTROL_TOKEN compose gives it). Deliberately not a probe of the device port: health
# checks there would count as connections (shifting `connections:` fault triggers), fill the
# event log, and turn "unhealthy" exactly when a scenario injects the faults you asked for.
# `docker compose run --rm probe` (espsim probe) is the full check of the device.
HEALTHCHECK --interval=10s --timeout=5s --start-period=2s --retries=3 \
  CMD ["/espsim", "fault", "list"]
