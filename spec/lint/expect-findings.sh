#!/bin/sh
# expect-findings.sh PATTERN COMMAND...: passes when COMMAND fails and its
# output holds PATTERN (grep -E). The lint_*_catches tests run the linters on
# a file with a known defect through it, so a linter that stopped failing
# (a lost --error-exitcode, a config that silences the check) fails them.
pattern=$1
shift
out=$("$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -eq 0 ]; then
  echo "expect-findings: '$*' exited 0 on a file with a known defect"
  exit 1
fi
if ! printf '%s\n' "$out" | grep -Eq -- "$pattern"; then
  echo "expect-findings: '$*' exited $rc but did not report /$pattern/"
  exit 1
fi
exit 0
