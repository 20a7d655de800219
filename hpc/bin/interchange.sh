#!/bin/bash
# Parsl's interchange, ended when the driver that started it is gone (the local site's
# interchange_launch_cmd). A driver stopped by Ctrl-C or SIGTERM shuts its interchanges
# down itself; one killed outright (kill -9) cannot, and its interchanges would otherwise
# linger. The watcher also ends by itself when the interchange exits normally.
driver=$PPID
( while kill -0 "$driver" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 2; done
  kill -0 $$ 2>/dev/null && kill -TERM $$ ) </dev/null >/dev/null 2>&1 &
exec interchange.py "$@"
