#!/usr/bin/env bash
# Installs helm into the git-ignored .cache/helm/bin when it is missing, built from the Go
# module proxy: `go install helm.sh/helm/v3/cmd/helm@v3.22.0`. Idempotent: does nothing when
# the pinned version is already there. Prints the helm binary's path on stdout.
#
# Go: the `go` on PATH (or /usr/local/go/bin/go); a Go >= 1.21 fetches the toolchain helm's
# go.mod asks for (go 1.26) by itself. Without any Go, the toolchain is taken from the same
# module proxy (the module golang.org/toolchain, as `go` itself does) into .cache/helm/toolchain.
#   HELM_VERSION     the helm.sh/helm/v3 release (default below)
#   HELM_BIN_DIR     where to put helm (default <repo>/.cache/helm/bin)
#   HELM_GO          a go binary to use, or "none" to ignore the system's and fetch the toolchain
# Exit status 0 with the path printed, or non-zero with the reason on stderr; the helm tests
# then skip, or fail under CI=true.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
GO_TOOLCHAIN="${GO_TOOLCHAIN:-go1.26.0}"   # helm v3.22.0's go.mod: go 1.26.0
GOPROXY_URL="${GOPROXY_URL:-https://proxy.golang.org}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cache="$repo/.cache/helm"
bin_dir="${HELM_BIN_DIR:-$cache/bin}"
helm="$bin_dir/helm"
stamp="$bin_dir/.version"

if [ -x "$helm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$HELM_VERSION" ]; then
  echo "$helm"
  exit 0
fi

find_go() {
  if [ "${HELM_GO:-}" = none ]; then
    return 0
  elif [ -n "${HELM_GO:-}" ]; then
    echo "$HELM_GO"
  elif command -v go >/dev/null 2>&1; then
    command -v go
  elif [ -x /usr/local/go/bin/go ]; then
    echo /usr/local/go/bin/go
  fi
}

fetch_toolchain() {
  local os arch version zip dir
  os="$(uname -s | tr '[:upper:]' '[:lower:]')"
  case "$(uname -m)" in
    x86_64 | amd64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "install-helm: no Go toolchain for $(uname -m); install Go (https://go.dev/dl/)" >&2; return 1 ;;
  esac
  version="v0.0.1-$GO_TOOLCHAIN.$os-$arch"
  dir="$cache/toolchain/golang.org/toolchain@$version"
  if [ ! -x "$dir/bin/go" ]; then
    command -v unzip >/dev/null 2>&1 || { echo "install-helm: no go and no unzip to unpack the Go toolchain" >&2; return 1; }
    mkdir -p "$cache/toolchain"
    zip="$cache/toolchain/$version.zip"
    echo "install-helm: fetching the Go toolchain golang.org/toolchain@$version from $GOPROXY_URL" >&2
    curl -fsSL --retry 3 -o "$zip.part" "$GOPROXY_URL/golang.org/toolchain/@v/$version.zip"
    mv "$zip.part" "$zip"
    unzip -q -o "$zip" -d "$cache/toolchain"
    rm -f "$zip"
    chmod +x "$dir/bin/go" "$dir/pkg/tool/"*/* 2>/dev/null || true
  fi
  echo "$dir/bin/go"
}

go_bin="$(find_go)"
if [ -z "$go_bin" ]; then
  go_bin="$(fetch_toolchain)" || exit 1
fi

mkdir -p "$bin_dir"
echo "install-helm: $go_bin install helm.sh/helm/v3/cmd/helm@$HELM_VERSION into $bin_dir (once; a few minutes)" >&2
# Module and build caches stay under .cache too, so a clean clone builds the same way.
own_gocache=0
if [ -z "${GOCACHE:-}" ]; then
  export GOCACHE="$cache/gobuild"
  own_gocache=1
fi
export GOBIN="$bin_dir"
export GOMODCACHE="${GOMODCACHE:-$cache/gomod}"
export GOFLAGS="${GOFLAGS:--modcacherw}"
export CGO_ENABLED=0
"$go_bin" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
echo "$HELM_VERSION" >"$stamp"
# helm is built once: drop our build cache (about 1.4 GB); the module cache stays for a rebuild.
if [ "$own_gocache" = 1 ]; then
  rm -rf "$GOCACHE"
fi
echo "$helm"
