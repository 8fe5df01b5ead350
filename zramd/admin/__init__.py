"""The command-line side: start/stop/status of daemons, loop devices, swap and mkfs on top of a
disk, the configuration file, and `zramd estimate`. Runs in the short-lived CLI process only and
never imports `zramd.serve` (the daemon is started as a separate process).
"""
