#!/usr/bin/env bash
# pip-audit over the locked dependencies (uv.lock, every group), printing its report: each known
# vulnerability with the versions that fix it (upgrade those in uv.lock). Findings do not fail this
# script unless --strict is given. When no vulnerability service can be reached (PyPI's JSON API,
# then OSV), it says so and exits 0: the test suite must also run where only a package mirror is.
set -uo pipefail
cd "$(dirname "$0")/.."
strict=0
[ "${1:-}" = "--strict" ] && strict=1
req=$(mktemp --suffix=.txt)
out=$(mktemp)
trap 'rm -f "$req" "$out"' EXIT
if ! .tools/bin/uv export --frozen --no-hashes --all-groups --no-emit-project --quiet -o "$req"; then
  echo "audit_deps: could not export uv.lock; no audit" >&2
  exit 0
fi
for service in pypi osv; do
  .venv/bin/pip-audit -r "$req" --disable-pip --no-deps --progress-spinner off -s "$service" --timeout 20 \
    -f json -o "$out" >/dev/null 2>&1
  # 0: none found, 1: some found; either way the JSON says how many packages were really audited
  .venv/bin/python - "$out" "$service" "$strict" <<'PY' && exit 0 || rc=$?
import json, sys
path, service, strict = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
try:
    deps = json.load(open(path))["dependencies"]
except (OSError, ValueError, KeyError):
    sys.exit(3)  # pip-audit failed outright (service unreachable): try the next one
audited = [d for d in deps if "skip_reason" not in d]
if not audited:
    sys.exit(3)
found = [(d, v) for d in audited for v in d.get("vulns", [])]
print(f"audit_deps: pip-audit ({service}) audited {len(audited)} of {len(deps)} locked packages: "
      f"{len(found)} known vulnerabilit{'y' if len(found) == 1 else 'ies'}")
for d, v in found:
    fix = ", ".join(v.get("fix_versions") or []) or "no fixed version yet"
    print(f"  {d['name']} {d['version']}: {v['id']} ({', '.join(v.get('aliases') or []) or 'no alias'}); fixed in {fix}")
skipped = [d["name"] for d in deps if "skip_reason" in d]
if skipped:
    print(f"  not audited ({len(skipped)}): {', '.join(skipped[:20])}{' ...' if len(skipped) > 20 else ''}")
sys.exit(1 if found and strict else 0)
PY
  [ "$rc" -eq 1 ] && exit 1
done
echo "audit_deps: no vulnerability service reachable (PyPI JSON API, OSV): $(grep -c '==' "$req") locked packages" \
     "not audited this time" >&2
exit 0
