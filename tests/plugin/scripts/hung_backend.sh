#!/bin/sh
exec python3 "$(dirname "$0")/hung_backend.py"
