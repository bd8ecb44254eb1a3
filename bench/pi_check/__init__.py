"""`make pi-check`: the edge install and a federated device on Debian bookworm ARM userlands.

`rootfs` builds (and caches) arm64 and armhf root filesystems with debootstrap under
qemu-user; `guest` runs commands inside one; `probe` is the script that runs the int8 backbone
on both sides; `run` wires them together and writes `bench/results/pi.json`.
"""
