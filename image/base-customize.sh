#!/bin/sh
# Runs inside the arm64 base root filesystem (under qemu-user) once every package is in:
# builds the initramfs once, which the build diverted away during the install because each
# run takes minutes under emulation.
set -eu

rm /usr/sbin/update-initramfs
dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
for modules in /lib/modules/*; do
    update-initramfs -c -k "${modules##*/}"
done
apt-get clean
rm -rf /var/lib/apt/lists/*
