#!/bin/sh
# install_test.sh BUILD_DIR SRC_DIR [HOST_CFLAGS]: `cmake --install` into a
# temporary prefix, then a host program built with nothing but
# `cc host.c $(pkg-config --cflags --libs reactord)` runs against it; the
# same install under DESTDIR lands under DESTDIR; lua5.4 finds reactor.so.
set -eu
build=$1 src=$2 extra=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "install_test: $*" >&2; exit 1; }

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name reactord.pc)
[ -n "$pc" ] || fail "no reactord.pc under the prefix"
libdir=$(dirname "$(dirname "$pc")")
for f in bin/reactord include/reactord.h include/reactor.h share/man/man1/reactord.1; do
  [ -e "$prefix/$f" ] || fail "$f not installed"
done
[ -e "$libdir/libreactord.so" ] || fail "libreactord.so not installed"
[ -e "$libdir/libreactord.a" ] || fail "libreactord.a not installed"
[ -e "$libdir/lua/5.4/reactor.so" ] || fail "reactor.so not under lib/lua/5.4"

# the host, as a user builds it
export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ "$(pkg-config --variable=prefix reactord)" = "$prefix" ] || fail "reactord.pc's prefix is not the install prefix"
# shellcheck disable=SC2046,SC2086
cc -o "$tmp/host" "$src/spec/c/install_host.c" $extra $(pkg-config --cflags --libs reactord) \
  -Wl,-rpath,"$libdir"
out=$("$tmp/host")
[ "$out" = "echo:hi" ] || fail "the host printed '$out', expected 'echo:hi'"
# the static library links too (its dependencies from Libs.private)
# shellcheck disable=SC2046,SC2086
cc -o "$tmp/host_static" "$src/spec/c/install_host.c" $extra \
  $(pkg-config --cflags reactord) "$libdir/libreactord.a" $(pkg-config --static --libs reactord | sed 's/-lreactord//')
out=$("$tmp/host_static")
[ "$out" = "echo:hi" ] || fail "the static host printed '$out', expected 'echo:hi'"

# lua5.4 finds the module where it is installed
LD_PRELOAD=${RD_LUA_PRELOAD:-} ASAN_OPTIONS=detect_leaks=0 lua5.4 -e "package.cpath = '$libdir/lua/5.4/?.so'; local r = require 'reactor'; assert(r.iterate and r.listenTCP)" \
  || fail "lua5.4 cannot require the installed reactor.so"

# DESTDIR: the same tree, under DESTDIR
DESTDIR=$tmp/dest cmake --install "$build" --prefix /opt/reactord >/dev/null
[ -e "$tmp/dest/opt/reactord/include/reactord.h" ] || fail "DESTDIR was not honoured"
grep -q '^prefix=/opt/reactord$' "$(find "$tmp/dest" -name reactord.pc)" || fail "reactord.pc under DESTDIR names the wrong prefix"
echo "install_test: ok"
