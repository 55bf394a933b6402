#!/usr/bin/env bash
# Writes a deployment descriptor's fields to $GITHUB_OUTPUT (descriptor path, digest, uri, traffic JSON).
set -euo pipefail
python3 - "$1" >> "$GITHUB_OUTPUT" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"descriptor={sys.argv[1]}")
print(f"digest={d['digest'] or ''}")
print(f"uri={d['uri'] or ''}")
print(f"traffic={json.dumps(d['traffic'])}")
PY
