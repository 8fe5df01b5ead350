"""The daemon side: the FUSE operations, the serve loop, the swap-path hardening, sd_notify and
the test devices. The only package that imports trio or pyfuse3; it never imports `zramd.admin`.
"""
