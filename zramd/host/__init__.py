"""What both the daemon (`zramd.serve`) and the command-line tools (`zramd.admin`) need to know
about the host, so that neither imports the other: the ``/run/zramd`` paths, the mount table and
loop devices, processes and external tools, attribute directories read from outside, and the
settings one daemon serves. Imports only the standard library and `zramd.core`.
"""
