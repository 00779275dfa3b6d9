# syntax=docker/dockerfile:1
#
# The exo-alerts image: the static binary on an empty base, run as the
# non-root user 65532, with no shell. Build it with BuildKit:
#
#   docker build --build-arg VERSION="$(git describe --always --dirty)" \
#     --build-arg REVISION="$(git rev-parse HEAD)" -t exo-alerts .
#
# `make image` builds the same image without Docker (tools/mkimage); here the
# build stage runs tools/mkimage -rootfs, so both ship the same files, built
# with the same flags. tools/mkimage/dockerfile_test.go checks that the user,
# entrypoint, ports and labels below are the ones make image writes.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
COPY tools/mkimage/go.mod tools/mkimage/go.sum tools/mkimage/
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download && cd tools/mkimage && go mod download
COPY . .
ARG TARGETOS TARGETARCH TARGETVARIANT
ARG VERSION=dev
ARG REVISION=
ARG SOURCE_DATE_EPOCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    cd tools/mkimage && go run . -src /src -version "${VERSION}" -revision "${REVISION}" \
      -platform "${TARGETOS}/${TARGETARCH}${TARGETVARIANT:+/${TARGETVARIANT}}" -rootfs /rootfs

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
EXPOSE 8080/tcp 9101/tcp 9102/tcp 9103/tcp
ENTRYPOINT ["/usr/local/bin/exo-alerts"]
ARG VERSION=dev
ARG REVISION=
LABEL org.opencontainers.image.title="exo-alerts" \
      org.opencontainers.image.description="Outgoing webhooks and alert rules for workflow runs" \
      org.opencontainers.image.source="https://github.com/exospherehost/exo-alerts" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
